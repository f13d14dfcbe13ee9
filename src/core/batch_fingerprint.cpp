// The fingerprint of batch files (batch_fingerprint.hpp): SHA-256 through OpenSSL's EVP, fed in
// blocks as the file is read.
#include "personad/batch_fingerprint.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "personad/toml_support.hpp"

namespace personad {

namespace {

using toml_support::file_type_name;
using toml_support::format_size;
using toml_support::kMaxBatchBytes;

// Large enough that a 30 MB file is a few hundred reads, small enough to live on any heap.
constexpr std::size_t kBlock = 256 * 1024;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

struct DigestFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Digest = std::unique_ptr<EVP_MD_CTX, DigestFree>;

Error digest_failed() {
  return make_error(ErrorKind::internal, "SHA-256 failed (OpenSSL EVP)");
}

Result<Digest> start_sha256() {
  Digest d(EVP_MD_CTX_new());
  if (!d || EVP_DigestInit_ex(d.get(), EVP_sha256(), nullptr) != 1) return digest_failed();
  return d;
}

Result<std::string> finish(EVP_MD_CTX* d, std::uintmax_t size) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(d, md, &len) != 1) return digest_failed();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out + ":" + std::to_string(size);
}

// Why a file of this stat is no batch file to read, or "".
std::string refusal(const struct stat& st) {
  if (!S_ISREG(st.st_mode))
    return "not a regular file (it is " + std::string(file_type_name(st.st_mode)) + ")";
  if (static_cast<std::uintmax_t>(st.st_size) > kMaxBatchBytes)
    return "is " + format_size(static_cast<std::uintmax_t>(st.st_size)) +
           "; a batch file is at most " + format_size(kMaxBatchBytes);
  return {};
}

Result<std::string> fingerprint_file(const std::filesystem::path& path) {
  // As read_text_file: stat first (opening a FIFO blocks, opening a device may act), then
  // O_NONBLOCK and a second look, should the name have been replaced since.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return make_error(ErrorKind::io, std::strerror(errno));
  if (auto why = refusal(st); !why.empty()) return make_error(ErrorKind::invalid, why);
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  if (f.fd < 0) return make_error(ErrorKind::io, std::strerror(errno));
  if (::fstat(f.fd, &st) != 0) return make_error(ErrorKind::io, std::strerror(errno));
  if (auto why = refusal(st); !why.empty()) return make_error(ErrorKind::invalid, why);

  auto digest = start_sha256();
  if (!digest) return digest.error();
  std::vector<unsigned char> block(kBlock);
  std::uintmax_t size = 0;
  for (;;) {
    const ssize_t n = ::read(f.fd, block.data(), block.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorKind::io, std::string("read error: ") + std::strerror(errno));
    }
    if (n == 0) break;
    size += static_cast<std::uintmax_t>(n);
    // A file that grows while it is read is stopped where load_batch_file would stop it.
    if (size > kMaxBatchBytes)
      return make_error(ErrorKind::invalid, "grew while being read; a batch file is at most " +
                                                format_size(kMaxBatchBytes));
    if (EVP_DigestUpdate(digest->get(), block.data(), static_cast<std::size_t>(n)) != 1)
      return digest_failed();
  }
  return finish(digest->get(), size);
}

}  // namespace

Result<std::string> batch_fingerprint(const std::filesystem::path& path) {
  auto print = fingerprint_file(path);
  if (print) return print;
  return make_error(print.kind(), "cannot fingerprint batch file " + path.string() + ": " +
                                      print.message());
}

Result<std::string> batch_fingerprint_of(std::string_view bytes) {
  auto digest = start_sha256();
  if (!digest) return digest.error();
  if (EVP_DigestUpdate(digest->get(), bytes.data(), bytes.size()) != 1) return digest_failed();
  return finish(digest->get(), bytes.size());
}

}  // namespace personad
