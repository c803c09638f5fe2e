#include "hostmaint/agent/controller/http_client.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>
#include <sstream>
#include <system_error>

#include "hostmaint/file_descriptor.hpp"

namespace hostmaint::agent::controller {

namespace {

// libcurl's global state is initialised once per process. A function-local
// static makes that thread-safe and keeps it out of global constructors;
// curl_global_cleanup is deliberately never called (other threads may still
// hold handles at exit).
void ensureCurlInitialised() {
  static const CURLcode result = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (result != CURLE_OK) {
    throw HttpError(HttpFailure::setup, "", 0,
                    std::string("cannot initialise libcurl: ") + curl_easy_strerror(result));
  }
}

struct CurlEasyDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;

void appendHeader(CurlSlistPtr& list, const std::string& header) {
  curl_slist* extended = curl_slist_append(list.get(), header.c_str());
  if (extended == nullptr) throw std::bad_alloc();
  (void)list.release();
  list.reset(extended);
}

std::string modeString(mode_t mode) {
  std::ostringstream out;
  out << '0' << std::oct << (mode & 07777);
  return out.str();
}

std::string_view trimmed(std::string_view text) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool startsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

// Per-transfer state the callbacks write into.
struct Transfer {
  std::string body;
  std::optional<std::string> etag;
  std::size_t limit = 0;
  bool over_limit = false;
};

size_t onBody(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  if (transfer->body.size() + bytes > transfer->limit) {
    transfer->over_limit = true;
    return 0;  // makes curl abort with CURLE_WRITE_ERROR
  }
  transfer->body.append(data, bytes);
  return bytes;
}

size_t onHeader(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  const std::string_view line(data, bytes);
  // A new status line starts a new response (after a 100 Continue): forget
  // headers of the interim one.
  if (line.starts_with("HTTP/")) {
    transfer->etag.reset();
  } else if (startsWithNoCase(line, "etag:")) {
    transfer->etag = std::string(trimmed(line.substr(5)));
  }
  return bytes;
}

HttpFailure classify(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return HttpFailure::timeout;
    case CURLE_FILESIZE_EXCEEDED:
      return HttpFailure::too_large;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
      return HttpFailure::tls;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return HttpFailure::setup;
    default:
      return HttpFailure::transport;
  }
}

// A short, printable excerpt of an error body for the log: a hostile server
// must not be able to inject control characters or megabytes into it.
std::string excerpt(std::string_view body) {
  constexpr std::size_t kMax = 200;
  std::string out;
  for (char c : body.substr(0, kMax)) {
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  }
  if (body.size() > kMax) out += "...";
  return std::string(trimmed(out));
}

long clampedMillis(std::chrono::milliseconds value) {
  const auto count = value.count();
  if (count < 0) return 0;
  if (count > std::numeric_limits<long>::max()) return std::numeric_limits<long>::max();
  return static_cast<long>(count);
}

}  // namespace

std::string_view toString(HttpFailure failure) {
  switch (failure) {
    case HttpFailure::transport: return "transport";
    case HttpFailure::tls: return "tls";
    case HttpFailure::timeout: return "timeout";
    case HttpFailure::too_large: return "too-large";
    case HttpFailure::http_status: return "http-status";
    case HttpFailure::setup: return "setup";
  }
  return "unknown";
}

HttpError::HttpError(HttpFailure failure, std::string url, long http_status,
                     const std::string& message)
    : std::runtime_error(message), failure_(failure), url_(std::move(url)),
      http_status_(http_status) {}

std::string readSecretFile(const std::filesystem::path& path, unsigned allowed_owner,
                           const std::string& what) {
  // open + fstat, not stat + open: the checked file is the read file.
  // O_NONBLOCK so a FIFO planted at the path cannot hang the start.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    throw TokenFileError("cannot open " + what + " " + path.string() + ": " +
                         std::strerror(errno));
  }
  const FileDescriptor closer(fd);

  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    throw TokenFileError("cannot stat " + what + " " + path.string() + ": " +
                         std::strerror(errno));
  }
  if (!S_ISREG(info.st_mode)) {
    throw TokenFileError(what + " " + path.string() + " is not a regular file");
  }
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    throw TokenFileError(what + " " + path.string() + " has mode " +
                         modeString(info.st_mode) +
                         ": it must not be accessible by group or others (use 0600 or 0400)");
  }
  if (info.st_uid != 0 && info.st_uid != allowed_owner) {
    throw TokenFileError(what + " " + path.string() + " is owned by uid " +
                         std::to_string(info.st_uid) + ": it must be owned by root or uid " +
                         std::to_string(allowed_owner));
  }
  constexpr std::size_t kMaxToken = 16 * 1024;
  std::string content;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw TokenFileError("cannot read " + what + " " + path.string() + ": " +
                           std::strerror(errno));
    }
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
    if (content.size() > kMaxToken) {
      throw TokenFileError(what + " " + path.string() + " is larger than " +
                           std::to_string(kMaxToken) + " bytes");
    }
  }
  const std::string_view token = trimmed(content);
  if (token.empty()) {
    throw TokenFileError(what + " " + path.string() + " is empty");
  }
  for (char c : token) {
    // The token goes into an HTTP header: no line breaks or control bytes.
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      throw TokenFileError(what + " " + path.string() +
                           " contains control characters (one token on one line expected)");
    }
  }
  return std::string(token);
}

std::string readBearerToken(const std::filesystem::path& path, unsigned allowed_owner) {
  return readSecretFile(path, allowed_owner, "bearer token file");
}

std::string readBearerToken(const std::filesystem::path& path) {
  return readBearerToken(path, static_cast<unsigned>(::geteuid()));
}

struct HttpClient::Handle {
  CurlEasyPtr curl;
  char error_buffer[CURL_ERROR_SIZE] = {};
};

HttpClient::HttpClient(HttpClientOptions options)
    : options_(std::move(options)), handle_(std::make_unique<Handle>()) {
  if (options_.client_key && !options_.client_cert) {
    throw HttpError(HttpFailure::setup, "", 0,
                    "controller client key " + options_.client_key->string() +
                        " is set without a client certificate");
  }
  if (options_.max_response_bytes == 0) {
    throw HttpError(HttpFailure::setup, "", 0, "the response size limit must be positive");
  }
  ensureCurlInitialised();
  handle_->curl.reset(curl_easy_init());
  if (!handle_->curl) throw HttpError(HttpFailure::setup, "", 0, "curl_easy_init failed");
}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

HttpResponse HttpClient::get(const std::string& url, const GetRequest& request) {
  return perform("GET", url, &request, std::nullopt);
}

HttpResponse HttpClient::putJson(const std::string& url, std::string_view json) {
  return perform("PUT", url, nullptr, json);
}

HttpResponse HttpClient::postJson(const std::string& url, std::string_view json) {
  return perform("POST", url, nullptr, json);
}

HttpResponse HttpClient::perform(std::string_view method, const std::string& url,
                                 const GetRequest* get, std::optional<std::string_view> body) {
  CURL* curl = handle_->curl.get();
  // reset keeps the connection cache, so polls reuse the TLS session.
  curl_easy_reset(curl);
  handle_->error_buffer[0] = '\0';

  const std::string what = std::string(method) + " " + url;
  Transfer transfer;
  transfer.limit = options_.max_response_bytes;
  CurlSlistPtr headers;

  auto failSetup = [&](const char* option) {
    throw HttpError(HttpFailure::setup, url, 0,
                    what + ": cannot set curl option " + option +
                        " (is libcurl built with TLS and HTTP support?)");
  };
#define HOSTMAINT_CURL_SET(option, value) \
  if (curl_easy_setopt(curl, option, value) != CURLE_OK) failSetup(#option)

  HOSTMAINT_CURL_SET(CURLOPT_URL, url.c_str());
  HOSTMAINT_CURL_SET(CURLOPT_ERRORBUFFER, handle_->error_buffer);
  // Timeouts must not use SIGALRM: the client runs on a worker thread.
  HOSTMAINT_CURL_SET(CURLOPT_NOSIGNAL, 1L);
  HOSTMAINT_CURL_SET(CURLOPT_PROTOCOLS_STR, "http,https");
  // A controller that redirects is misconfigured; following would also carry
  // the bearer token to wherever the Location points.
  HOSTMAINT_CURL_SET(CURLOPT_FOLLOWLOCATION, 0L);
  HOSTMAINT_CURL_SET(CURLOPT_SSL_VERIFYPEER, 1L);
  HOSTMAINT_CURL_SET(CURLOPT_SSL_VERIFYHOST, 2L);
  if (options_.ca_file) HOSTMAINT_CURL_SET(CURLOPT_CAINFO, options_.ca_file->c_str());
  if (options_.client_cert) {
    HOSTMAINT_CURL_SET(CURLOPT_SSLCERT, options_.client_cert->c_str());
    // The key may sit in the certificate file itself.
    const auto& key = options_.client_key ? *options_.client_key : *options_.client_cert;
    HOSTMAINT_CURL_SET(CURLOPT_SSLKEY, key.c_str());
  }
  HOSTMAINT_CURL_SET(CURLOPT_CONNECTTIMEOUT_MS, clampedMillis(options_.connect_timeout));
  auto total_timeout = options_.request_timeout;
  if (get != nullptr && get->prefer_wait) total_timeout += *get->prefer_wait;
  HOSTMAINT_CURL_SET(CURLOPT_TIMEOUT_MS, clampedMillis(total_timeout));
  // Refuses up front when Content-Length announces more than the limit; the
  // write callback catches bodies without Content-Length.
  HOSTMAINT_CURL_SET(CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(options_.max_response_bytes));
  HOSTMAINT_CURL_SET(CURLOPT_WRITEFUNCTION, &onBody);
  HOSTMAINT_CURL_SET(CURLOPT_WRITEDATA, &transfer);
  HOSTMAINT_CURL_SET(CURLOPT_HEADERFUNCTION, &onHeader);
  HOSTMAINT_CURL_SET(CURLOPT_HEADERDATA, &transfer);
  HOSTMAINT_CURL_SET(CURLOPT_USERAGENT, options_.user_agent.c_str());

  appendHeader(headers, "Accept: application/json");
  if (options_.bearer_token) {
    appendHeader(headers, "Authorization: Bearer " + *options_.bearer_token);
  } else if (options_.authorization) {
    appendHeader(headers, "Authorization: " + *options_.authorization);
  }
  if (get != nullptr) {
    HOSTMAINT_CURL_SET(CURLOPT_HTTPGET, 1L);
    if (get->if_none_match) appendHeader(headers, "If-None-Match: " + *get->if_none_match);
    if (get->prefer_wait) {
      appendHeader(headers, "Prefer: wait=" + std::to_string(get->prefer_wait->count()));
    }
  }
  if (body) {
    const std::string method_name(method);  // curl copies it
    HOSTMAINT_CURL_SET(CURLOPT_CUSTOMREQUEST, method_name.c_str());
    HOSTMAINT_CURL_SET(CURLOPT_POSTFIELDS, body->data());
    HOSTMAINT_CURL_SET(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    appendHeader(headers, "Content-Type: application/json");
    // No "Expect: 100-continue" round trip for large status documents.
    appendHeader(headers, "Expect:");
  }
  HOSTMAINT_CURL_SET(CURLOPT_HTTPHEADER, headers.get());
#undef HOSTMAINT_CURL_SET

  const CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

  if (code != CURLE_OK) {
    if (transfer.over_limit || code == CURLE_FILESIZE_EXCEEDED) {
      throw HttpError(HttpFailure::too_large, url, status,
                      what + ": response from " + url + " exceeds the " +
                          std::to_string(options_.max_response_bytes) + " byte limit");
    }
    std::string detail = handle_->error_buffer[0] != '\0' ? handle_->error_buffer
                                                           : curl_easy_strerror(code);
    std::string message = what + ": " + detail + " (curl error " +
                          std::to_string(static_cast<int>(code)) + ")";
    if (status != 0) message += ", HTTP status " + std::to_string(status);
    throw HttpError(classify(code), url, status, message);
  }

  const bool accepted = (status >= 200 && status < 300) || (get != nullptr && status == 304);
  if (!accepted) {
    std::string message = what + ": HTTP status " + std::to_string(status);
    const std::string text = excerpt(transfer.body);
    if (!text.empty()) message += ": " + text;
    throw HttpError(HttpFailure::http_status, url, status, message);
  }
  HttpResponse response;
  response.status = status;
  response.body = std::move(transfer.body);
  response.etag = std::move(transfer.etag);
  return response;
}

}  // namespace hostmaint::agent::controller
