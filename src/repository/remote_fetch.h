// How a remote repository (s3://, mlflow://) puts a version into the
// ModelCache: the entry id named by what it downloads, the staging folder,
// progress for the index and the log, and the rename into place. The kind
// supplies only the download of a batch of files into open files.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "repository/model_cache.h"
#include "repository/model_repository.h"

namespace mm {

// Whether every '/'-separated segment of `path` is a usable file name: not
// empty, ".", "..", and no NUL (a remote key or artifact path that would
// leave the folder it is fetched into).
bool SafeRelativePath(std::string_view path);

// The files of version `version` of a model, and the model folder's own
// (those outside any version folder), from its listing: what Fetch downloads.
std::vector<const RemoteFile*> FilesOfVersion(const std::vector<RemoteFile>& files,
                                              int64_t version);

// A cache entry id: the model's name (made a plain folder name, cut at 64
// characters), the version, and a hash of the repository key and every
// file's path, size and ETag.
std::string CacheEntryId(const std::string& repository, const std::string& model, int64_t version,
                         const std::vector<const RemoteFile*>& files);

// Downloads `files` into the open files `fds` (same order); `bytes(n)`
// reports the bytes received so far in this call, and returns false to stop
// it (the download then returns CANCELLED).
using DownloadFiles =
    std::function<Status(const std::vector<const RemoteFile*>& files, const std::vector<int>& fds,
                         const std::function<bool(uint64_t)>& bytes)>;

// Version `version` of model `model` of repository `repository` on local
// disk: the cached entry when there is one whose files have the listed
// sizes, else downloaded into a staged entry (batches of files, each file
// preallocated) and committed. `from` names the source in messages and the
// log ("s3://bucket/prefix/model").
StatusOr<LocalModelVersion> FetchToCache(ModelCache& cache, const std::string& repository,
                                         const std::string& model, int64_t version,
                                         const std::vector<const RemoteFile*>& files,
                                         const std::string& from, const FetchProgress& progress,
                                         const DownloadFiles& download);

}  // namespace mm
