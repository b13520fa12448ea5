// Where an s3:// repository sends its requests and how it signs them: the
// endpoint, region and credentials, resolved from mmserve's --s3-endpoint,
// the environment and the AWS shared files the way the AWS SDKs and CLI do,
// so that a machine set up for `aws s3` serves from S3 unchanged.
//
// Contract of ResolveS3Settings:
//  1. Profile: AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default".
//  2. Endpoint, first that is set: `endpoint_flag`; env AWS_ENDPOINT_URL_S3;
//     env AWS_ENDPOINT_URL; the profile's `endpoint_url` in the config file (a
//     nested one under `s3 =` wins over a top-level one); else the AWS default
//     "https://s3.<region>.amazonaws.com" ("...amazonaws.com.cn" for a cn-
//     region), with endpoint_from_default set. A value must be http:// or
//     https:// (any case; written lower-case) followed by a host (a name, an
//     IPv4 address or a [bracketed] IPv6 one) and an optional :port; one
//     trailing '/' is dropped. A path, query, fragment, userinfo or any other
//     scheme is INVALID_ARGUMENT naming where the value came from.
//  3. Region, first that is set: env AWS_REGION; env AWS_DEFAULT_REGION; the
//     profile's `region` in the config file; else "us-east-1". It must match
//     [a-z0-9-]+ (it becomes part of curl's "aws:amz:REGION:s3").
//  4. Credentials, first that applies:
//       a. env AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with
//          AWS_SESSION_TOKEN if set ("environment");
//       b. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
//          ~/.aws/credentials), section [PROFILE];
//       c. the config file (AWS_CONFIG_FILE, else ~/.aws/config), section
//          [profile PROFILE] ([default] or [profile default] for the default
//          profile; [profile default] wins when both are there);
//       d. none: anonymous, unsigned requests.
//     In b and c the keys are aws_access_key_id, aws_secret_access_key and
//     aws_session_token; a section with neither of the pair goes on to the
//     next step. A session token without the pair is ignored, as the SDKs do.
//  5. Errors:
//     - one of a credential pair without the other (in the environment or
//       in a section): INVALID_ARGUMENT naming what is missing (and the file
//       and profile);
//     - a profile set in the environment that neither file has, when the
//       environment holds no credentials: NOT_FOUND naming the profile and
//       both files;
//     - a file that cannot be read, is not a regular file (a folder, FIFO,
//       device) or is over 1 MiB: INVALID_ARGUMENT naming it. A file that does
//       not exist is simply absent;
//     - a line a file cannot hold (see the INI rules): INVALID_ARGUMENT naming
//       the file and the line number, never the line itself;
//     - a credential holding a control character (a line break would go
//       into a request header), or an access key id holding ':' (curl splits
//       "id:secret" at the first ':'): INVALID_ARGUMENT naming where it came
//       from.
//     No message ever holds a secret access key or session token; every one
//     says what was wrong and what was expected.
//  6. An environment variable set to "" counts as unset. A file path from the
//     environment may start with "~/" (the home folder).
//
// INI rules, as the AWS CLI reads its files: "[section]" lines (a '#' or ';'
// comment may follow the ']'); "key = value" lines (spaces around '='
// optional; keys are matched case-sensitively, lower-case; values trimmed;
// each key and each section at most once); full-line comments starting with
// '#' or ';'; blank lines. A line indented deeper than the key line above it
// continues that key: after "key =" with an empty value the indented lines
// are a nested sub-section of "k = v" lines ("s3 =\n  addressing_style =
// path"), which are skipped except the config file's `endpoint_url` under
// `s3`; after a non-empty value they continue it on a new line (configparser's
// multi-line value).
//
// Thread-safety: ResolveS3Settings is a free function with no shared state; it
// reads the files every call (callers resolve once, at start-up).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: none
  bool anonymous() const { return access_key_id.empty(); }
};

// Where the S3 client sends requests and how it signs them.
struct S3Settings {
  std::string endpoint;  // scheme://host[:port], no trailing '/', e.g. "http://127.0.0.1:9000";
                         // default "https://s3.<region>.amazonaws.com"
  bool endpoint_from_default = false;
  std::string region;  // default "us-east-1"
  AwsCredentials credentials;
  // Where the credentials came from, for the log, never the secret itself:
  // "environment", "shared credentials file '/root/.aws/credentials', profile 'dev'",
  // "config file '/root/.aws/config', profile 'dev'", "none (anonymous requests)".
  std::string credentials_source;
};

// The process environment, injected so that tests need not touch the real one.
struct AwsEnvironment {
  std::function<std::optional<std::string>(std::string_view name)>
      get;                     // an env var; nullopt if unset
  std::filesystem::path home;  // $HOME
  // The real getenv, and $HOME (the password database's home when HOME is
  // unset). Reading the environment is safe while nothing calls setenv.
  static AwsEnvironment Process();
};

// Resolves endpoint, region and credentials the way the AWS SDKs and CLI do
// (the contract at the top of this file). `endpoint_flag` is --s3-endpoint
// ("" when not given). An empty `env.get` reads as an empty environment.
StatusOr<S3Settings> ResolveS3Settings(const AwsEnvironment& env, std::string_view endpoint_flag);

}  // namespace mm
