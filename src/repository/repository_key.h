// How a --model-repository value (or a tenants file's `repositories` entry)
// names its repository, without opening it.
//
// A value is either
//   - a local folder: a plain path ("/models", "models/", "./m/../m"), or
//     file://PATH ("file:///models", "file://models" relative); or
//   - a remote repository: SCHEME://REST, where SCHEME is a letter followed
//     by letters, digits, '+', '-' or '.' ("s3://bucket/prefix").
// Anything else is a plain path: "/models/a://b" is a folder, since a
// scheme cannot contain '/'.
//
// The key (ModelRepository::key(), model_repository.h contract 1) is what two
// spellings of one repository share:
//   - a local folder: PathKey(PATH) (core/path_key.h): absolute, normalized,
//     symlinks resolved as far as the path exists, no trailing '/'. It reads
//     the filesystem, so it is taken once (at open, at a tenants file load).
//   - a remote repository: the URI with its scheme lowercased, runs of '/'
//     after the "//" collapsed to one and trailing '/' dropped
//     ("S3://bucket//a/b/" -> "s3://bucket/a/b"). Nothing else changes:
//     what a remote kind treats as equal (case, "." or ".." segments) is its
//     own business, and a key must never make two repositories one.
//
// Pure apart from PathKey's reads; safe to call concurrently.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace mm {

struct RepositoryLocation {
  // Lowercase, without "://": "s3", "mlflow". Empty for a local folder
  // (a plain path or file://PATH).
  std::string scheme;
  // A local folder: the path as written (file:// removed; may be empty).
  // A remote repository: the normalized URI, which is its key.
  std::string path;

  bool local() const { return scheme.empty(); }
};

// Splits `uri` as the top of this file says. Never fails: whether the scheme
// is supported, or the path usable, is for OpenModelRepository to say.
RepositoryLocation ParseRepositoryLocation(std::string_view uri);

// The key the repository `uri` names (see the top of this file).
std::string RepositoryKey(std::string_view uri);

// The key of the local folder `path`: PathKey(path). What RepositoryKey gives
// for a plain path or file://PATH, and LocalRepository::key().
std::string LocalRepositoryKey(const std::filesystem::path& path);

}  // namespace mm
