// Archive (see archive.hpp).
#include "personad/archive.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "personad/job_json.hpp"

namespace personad {

namespace json = boost::json;

namespace {

Error io_error(const std::string& what, const std::string& path) {
  return make_error(ErrorKind::io, what + " " + path + ": " + std::strerror(errno));
}

// The keys FILE holds already; a last line without its newline (a crash mid-write) is cut off.
Result<std::set<std::string>> keys_in(const std::string& path) {
  std::set<std::string> keys;
  std::ifstream in(path, std::ios::binary);
  if (!in) return keys;  // no file yet
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  const std::size_t complete = text.empty() || text.back() == '\n' ? text.size()
                                                                    : text.rfind('\n') + 1;
  if (complete != text.size() && ::truncate(path.c_str(), static_cast<off_t>(complete)) != 0)
    return io_error("cannot cut the partial last line of", path);
  std::size_t line_no = 0;
  for (std::size_t at = 0; at < complete;) {
    const std::size_t end = text.find('\n', at);
    ++line_no;
    boost::system::error_code ec;
    auto v = json::parse(std::string_view(text).substr(at, end - at), ec);
    const json::object* o = ec ? nullptr : v.if_object();
    const json::value* job = o ? o->if_contains("job") : nullptr;
    const json::value* key = job && job->is_object() ? job->as_object().if_contains("key") : nullptr;
    if (!key || !key->is_string())
      return make_error(ErrorKind::invalid, path + ":" + std::to_string(line_no) +
                                                ": not an archive line (no job.key)");
    keys.insert(std::string(key->as_string()));
    at = end + 1;
  }
  return keys;
}

Result<void> append_synced(const std::string& path, const std::string& lines) {
  const bool existed = std::filesystem::exists(path);
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return io_error("cannot open", path);
  std::size_t done = 0;
  while (done < lines.size()) {
    const ssize_t n = ::write(fd, lines.data() + done, lines.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return io_error("cannot write", path);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return io_error("cannot fsync", path);
  }
  ::close(fd);
  if (!existed) {
    // The new file's directory entry is durable too.
    std::string dir = std::filesystem::absolute(path).parent_path().string();
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return {};
}

}  // namespace

Result<ArchiveOutcome> archive_jobs(Store& store, TimePoint before, const std::string& file,
                                    TimePoint now, const ArchiveHooks& hooks) {
  ArchiveOutcome out;
  std::vector<Job> chosen;
  for (State s : all_states()) {
    if (!is_final(s)) continue;
    auto jobs = store.list(s);
    if (!jobs) return jobs.error();
    for (auto& j : *jobs)
      if (j.status_since.value_or(j.updated_at) < before) chosen.push_back(std::move(j));
  }
  out.selected = chosen.size();
  auto present = keys_in(file);
  if (!present) return present.error();
  std::string lines;
  std::vector<std::int64_t> ids;
  for (const Job& j : chosen) {
    ids.push_back(j.id);
    if (present->count(j.key)) {
      ++out.already;
      continue;
    }
    auto h = store.history(j.id);
    if (!h) return h.error();
    json::object line{{"archived_at", format_rfc3339(now)},
                      {"job", job_to_json(j)},
                      {"history", history_to_json(*h)}};
    lines += json::serialize(line) + "\n";
    ++out.written;
  }
  if (!lines.empty())
    if (auto w = append_synced(file, lines); !w) return w.error();
  if (hooks.after_sync) hooks.after_sync();
  if (ids.empty()) return out;
  auto dropped = store.drop_archived(ids, file, now);
  if (!dropped) return dropped.error();
  out.dropped = *dropped;
  return out;
}

}  // namespace personad
