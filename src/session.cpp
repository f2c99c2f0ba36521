// The session client: one connection per session to its broker, started on demand, reset after fork.
#include "ndshm/session.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <pthread.h>
#include <unistd.h>

#include "detail/client.hpp"
#include "detail/platform.hpp"
#include "detail/protocol.hpp"
#include "ndshm/errors.hpp"
#include "ndshm/handle.hpp"

#ifndef NDSHM_DEFAULT_BROKER
#define NDSHM_DEFAULT_BROKER "ndshm-broker"
#endif

namespace ndshm {
namespace detail {
namespace {

std::mutex g_program_mutex;
std::string g_program; // NOLINT: founded on first use, kept by fork()ed children

std::string program_locked() {
  if (g_program.empty()) {
    auto self = process_stat(::getpid());
    g_program = format_program(::getpid(), self ? self->start_time : 0, random_u64());
  }
  return g_program;
}

std::mutex g_path_mutex;
std::string g_broker_path; // NOLINT: set once by the bindings

std::string broker_path() {
  if (const char *env = std::getenv("NDSHM_BROKER"); env != nullptr && *env != '\0')
    return env;
  std::lock_guard lock(g_path_mutex);
  return g_broker_path.empty() ? std::string(NDSHM_DEFAULT_BROKER) : g_broker_path;
}

// Populating (memory_populate: huge pages where it can, one thread per 8 MiB up to the core count) maps
// pages faster than faulting them as they are written. With small pages, 0.23 s/GiB on 2 threads vs
// 0.55-0.65 s/GiB of faults, and below 8 MiB it made creation 1.5x slower (1 MiB: 1.16 vs 0.77 ms) for
// little gain; the threshold has not been measured again with huge pages (bench_pages.py: 888 MiB in
// 0.08-0.54 s, depending on where the memory comes from).
constexpr std::uint64_t populate_threshold = 8u << 20;
constexpr std::uint64_t populate_per_thread = 8u << 20;

std::string hex_name() {
  std::array<char, 20> text{};
  std::snprintf(text.data(), text.size(), "a%016llx",
                static_cast<unsigned long long>(random_u64()));
  return text.data();
}

// Listings only show it: keep each entry far below a message (max_message) whatever the dtype.
segment_meta capped(const segment_meta &meta) {
  constexpr std::size_t limit = 1024;
  auto cut = [](const std::string &text) { return text.size() <= limit ? text : text.substr(0, limit - 3) + "..."; };
  return {cut(meta.dtype), cut(meta.shape)};
}

void check_name(std::string_view kind, std::string_view name) {
  if (!valid_name(name))
    throw std::invalid_argument("ndshm: invalid " + std::string(kind) + " name '" + std::string(name) +
                                "': use 1-200 characters of A-Z a-z 0-9 _ . -");
}

} // namespace

/// This process's connection to one session's broker, and the count of mappings it holds there.
class client {
public:
  explicit client(std::string session) : m_session(std::move(session)) {}

  std::shared_ptr<mapping> create(const segment_options &options) {
    std::string name = options.name.empty() ? hex_name() : options.name;
    // Small segments have their pages reserved (fallocate); large ones are populated, which allocates
    // them as huge pages where it can (memory_prefault) and fails here just the same when memory is short.
    const bool populate = options.populate && options.size >= populate_threshold;
    unique_fd fd = memory_create("ndshm:" + m_session + ":" + name, options.size, options.populate && !populate);
    auto result = mapping::map(fd.get(), options.size, access::read_write, m_session, name);
    if (populate) {
      auto cores = static_cast<std::uint64_t>(std::max(1u, std::thread::hardware_concurrency()));
      auto threads = std::clamp<std::uint64_t>(options.size / populate_per_thread, 1, cores);
      if (!memory_populate(result->data(), options.size, static_cast<unsigned>(threads)))
        throw std::bad_alloc();
    }
    enroll(fd.get(), result, options);
    return result;
  }

  /// A sealed segment this process filled itself (growing_segment), already mapped by segment:
  /// registered under a new random name (options.name ignored).
  void adopt(int fd, const std::shared_ptr<mapping> &segment, const segment_options &options) {
    segment_options random = options;
    random.name.clear();
    segment->m_name = hex_name();
    enroll(fd, segment, random);
  }

private:
  /// Registers a new segment (fd, mapped by segment) with the broker. A random name (options.name
  /// empty) that is taken is drawn again; a chosen one raises segment_exists.
  void enroll(int fd, const std::shared_ptr<mapping> &segment, const segment_options &options) {
    std::lock_guard lock(m_mutex);
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::uint32_t flags = (options.named ? flag_named : 0u) | (options.persist ? flag_persist : 0u);
      request message{op::create, flags, options.size, segment->name(), capped(options.meta)};
      reply answer = call(message, fd, nullptr);
      if (answer.code == status::exists) {
        if (!options.name.empty())
          throw segment_exists("ndshm: a segment named '" + segment->name() + "' already exists in session '" +
                               m_session + "'");
        segment->m_name = hex_name(); // the memfd's label keeps the first name: /proc listings only
        continue;
      }
      expect_ok(answer, segment->name());
      ++m_live[segment->name()];
      m_cache[1][segment->name()] = segment;
      segment->m_registered = true; // last: if the lines above throw, ~mapping must not take our lock
      return;
    }
    throw broker_error("ndshm: could not find a free segment name");
  }

public:
  std::shared_ptr<mapping> attach(std::string_view name, access mode, std::uint64_t ticket) {
    std::shared_ptr<mapping> cached; // released after the lock: its destructor takes the lock
    std::lock_guard lock(m_mutex);
    auto &cache = m_cache[mode == access::read_write ? 1 : 0];
    auto it = cache.find(std::string(name));
    if (it != cache.end())
      cached = it->second.lock();
    request message{op::attach, 0, 0, std::string(name), {}, ticket};
    unique_fd fd;
    reply answer = call(message, -1, &fd);
    if (answer.code == status::not_found)
      throw segment_not_found("ndshm: no segment '" + std::string(name) + "' in session '" + m_session +
                              "': it was freed (no process mapped it and no handle to it was pending), "
                              "its broker exited, or it never existed");
    expect_ok(answer, name);
    // From here the broker counts a hold for this connection: every way out must give it back.
    if (!fd) {
      send_release_locked(std::string(name));
      throw broker_error("ndshm: no descriptor arrived for '" + std::string(name) +
                         "' (is the open-file limit reached?)");
    }
    if (cached) {
      // Same process, same segment: reuse the mapping; the broker counted one more hold, give it back.
      send_release_locked(cached->name());
      return cached;
    }
    std::shared_ptr<mapping> result;
    try {
      if (memory_size(fd.get()) < answer.size)
        throw broker_error("ndshm: segment '" + std::string(name) + "' is smaller than its recorded size");
      result = mapping::map(fd.get(), answer.size, mode, m_session, std::string(name));
    } catch (...) {
      send_release_locked(std::string(name));
      throw;
    }
    ++m_live[result->name()];
    cache[result->name()] = result;
    result->m_registered = true; // last: if the lines above throw, ~mapping must not take our lock
    return result;
  }

  /// A request about one segment that has a plain reply; returns its value.
  std::uint64_t simple(op code, std::string_view name, std::uint32_t flags = 0) {
    std::lock_guard lock(m_mutex);
    reply answer = call(request{code, flags, 0, std::string(name), {}}, -1, nullptr);
    if (answer.code == status::not_found)
      throw segment_not_found("ndshm: segment '" + std::string(name) + "' is not known to the broker of session '" +
                              m_session + "' (freed, unlinked, or the broker restarted)");
    expect_ok(answer, name);
    return answer.value;
  }

  std::vector<segment_status> list() {
    std::lock_guard lock(m_mutex);
    std::vector<segment_status> all;
    if (!connect_locked(false))
      return all;
    send_locked(encode(request{op::list, 0, 0, {}, {}}), -1);
    for (;;) {
      reply answer = receive_locked(nullptr);
      for (auto &entry : answer.entries)
        all.push_back(std::move(entry));
      if (!answer.more)
        return all;
    }
  }

  std::size_t collect(double min_age, std::string_view program) {
    std::lock_guard lock(m_mutex);
    if (!connect_locked(false))
      return 0;
    auto ms = static_cast<std::uint64_t>(std::max(min_age, 0.0) * 1000.0);
    return call(request{op::collect, 0, ms, std::string(program), {}}, -1, nullptr).value;
  }

  int pid() {
    std::lock_guard lock(m_mutex);
    return connect_locked(false) ? m_broker_pid : 0;
  }

  void disconnect() {
    std::lock_guard lock(m_mutex);
    m_sock.reset();
  }

  void unmapped(const std::string &name) noexcept {
    std::lock_guard lock(m_mutex);
    auto it = m_live.find(name);
    if (it == m_live.end())
      return;
    if (--it->second == 0)
      m_live.erase(it);
    if (m_sock) {
      try {
        send_release_locked(name);
      } catch (...) {
        m_sock.reset(); // the broker counts this connection's holds down when the socket closes
      }
    }
  }

  // fork: the parent's socket must not be shared with the child; the child reconnects on demand.
  void lock() { m_mutex.lock(); }
  void unlock() { m_mutex.unlock(); }
  void forget_connection() { m_sock.reset(); }

private:
  void send_release_locked(const std::string &name) {
    (void)socket_send(m_sock.get(), encode(request{op::release, 0, 0, name, {}}), -1);
  }

  void expect_ok(const reply &answer, std::string_view name) const {
    if (answer.code != status::ok)
      throw broker_error("ndshm: the broker of session '" + m_session + "' refused a request about '" +
                         std::string(name) + "' (status " +
                         std::to_string(static_cast<unsigned>(answer.code)) + ")");
  }

  reply call(const request &message, int fd, unique_fd *received) {
    auto bytes = encode(message);
    connect_locked(true);
    if (!socket_send(m_sock.get(), bytes, fd)) {
      // Not delivered (the broker exited between calls): one fresh broker, one retry.
      m_sock.reset();
      connect_locked(true);
      send_locked(bytes, fd);
    }
    return receive_locked(received);
  }

  void send_locked(const std::vector<std::byte> &bytes, int fd) {
    if (!socket_send(m_sock.get(), bytes, fd)) {
      m_sock.reset();
      throw broker_error("ndshm: lost the broker of session '" + m_session + "'");
    }
  }

  reply receive_locked(unique_fd *received) {
    std::vector<std::byte> buffer(max_message);
    std::optional<std::size_t> n;
    try {
      n = socket_recv(m_sock.get(), buffer, received);
    } catch (...) {
      m_sock.reset();
      throw;
    }
    if (!n) {
      m_sock.reset();
      throw broker_error("ndshm: the broker of session '" + m_session + "' (pid " +
                         std::to_string(m_broker_pid) + ") exited during a request");
    }
    auto answer = decode_reply(std::span(buffer).first(*n));
    if (!answer) {
      m_sock.reset(); // out of step with the broker: start afresh rather than misread later replies
      throw broker_error("ndshm: malformed reply from the broker of session '" + m_session + "'");
    }
    return std::move(*answer);
  }

  bool connect_locked(bool spawn) {
    if (m_sock)
      return true;
    const std::string address = socket_address(m_session);
    for (int attempt = 0; attempt < 50; ++attempt) {
      unique_fd sock = socket_connect(address);
      if (!sock) {
        if (!spawn)
          return false;
        std::string path = broker_path();
        int rc = spawn_daemon(path, {"--session", m_session});
        if (rc != 0)
          throw broker_error("ndshm: the broker " + path + " failed to start (exit status " +
                             std::to_string(rc) + ")");
        continue;
      }
      auto peer = socket_peer(sock.get());
      if (peer.uid != ::getuid())
        throw broker_error("ndshm: the socket of session '" + m_session + "' belongs to uid " +
                           std::to_string(peer.uid) + ", not to this user; refusing it");
      std::string program;
      {
        std::lock_guard program_lock(g_program_mutex);
        program = program_locked();
      }
      std::vector<std::byte> buffer(max_message);
      if (!socket_send(sock.get(), encode(request{op::hello, 0, 0, program, {}}), -1))
        continue; // the broker is exiting: start another
      auto n = socket_recv(sock.get(), buffer, nullptr);
      if (!n)
        continue;
      auto answer = decode_reply(std::span(buffer).first(*n));
      if (!answer || answer->code != status::ok)
        throw broker_error("ndshm: the broker of session '" + m_session + "' speaks another protocol");
      if (answer->program != program) {
        // The broker refused the claim (its founder gone and unknown here): this process founded a
        // program of its own there, and keeps to it everywhere, as its fork()ed children will.
        std::lock_guard program_lock(g_program_mutex);
        g_program = answer->program;
      }
      m_sock = std::move(sock);
      m_broker_pid = static_cast<int>(answer->value);
      rehold_locked();
      return true;
    }
    throw broker_error("ndshm: could not reach the broker of session '" + m_session + "'");
  }

  // A fresh connection (after fork or a broker restart) holds nothing yet: declare what this process maps.
  void rehold_locked() {
    for (auto it = m_live.begin(); it != m_live.end(); ++it) {
      for (std::uint32_t i = 0; i < it->second; ++i) {
        send_locked(encode(request{op::hold, 0, 0, it->first, {}}), -1);
        (void)receive_locked(nullptr);
      }
    }
  }

  std::mutex m_mutex;
  std::string m_session;
  unique_fd m_sock;
  int m_broker_pid = 0;
  std::unordered_map<std::string, std::uint32_t> m_live;
  std::unordered_map<std::string, std::weak_ptr<mapping>> m_cache[2];
};

namespace {

std::mutex g_clients_mutex;
// Never destroyed: mappings may outlive static destruction at exit.
auto *g_clients = new std::map<std::string, std::unique_ptr<client>, std::less<>>();

void before_fork() {
  g_clients_mutex.lock();
  for (auto &[name, c] : *g_clients)
    c->lock();
  g_program_mutex.lock();
}
void after_fork_parent() {
  g_program_mutex.unlock();
  for (auto &[name, c] : *g_clients)
    c->unlock();
  g_clients_mutex.unlock();
}
void after_fork_child() {
  g_program_mutex.unlock();
  for (auto &[name, c] : *g_clients) {
    c->forget_connection();
    c->unlock();
  }
  g_clients_mutex.unlock();
}

client &client_for(std::string_view session) {
  static std::once_flag once;
  std::call_once(once, [] { ::pthread_atfork(before_fork, after_fork_parent, after_fork_child); });
  std::string name = session.empty() ? default_session() : std::string(session);
  check_name("session", name);
  std::lock_guard lock(g_clients_mutex);
  auto it = g_clients->find(name);
  if (it == g_clients->end())
    it = g_clients->emplace(name, std::make_unique<client>(name)).first;
  return *it->second;
}

} // namespace

void on_unmapped(const std::string &session, const std::string &name) noexcept {
  std::unique_lock lock(g_clients_mutex);
  auto it = g_clients->find(session);
  if (it == g_clients->end())
    return;
  client &c = *it->second;
  lock.unlock();
  c.unmapped(name);
}

} // namespace detail

std::string default_session() {
  const char *env = std::getenv("NDSHM_SESSION");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("default");
}

std::string program_id() {
  std::lock_guard lock(detail::g_program_mutex);
  return detail::program_locked();
}

bool set_program_id(const std::string &id) {
  if (!detail::parse_program(id))
    return false;
  std::lock_guard lock(detail::g_program_mutex);
  detail::g_program = id;
  return true;
}

void set_broker_path(std::string path) {
  std::lock_guard lock(detail::g_path_mutex);
  detail::g_broker_path = std::move(path);
}

std::shared_ptr<mapping> create_segment(const segment_options &options) {
  if (!options.name.empty())
    detail::check_name("segment", options.name);
  return detail::client_for(options.session).create(options);
}

growing_segment::growing_segment(std::string session)
    : m_session(session.empty() ? default_session() : std::move(session)) {
  detail::check_name("session", m_session);
  m_fd = detail::memory_create_growable("ndshm:" + m_session + ":growing").release();
}

growing_segment::~growing_segment() {
  if (m_data != nullptr)
    detail::memory_unmap(m_data, m_capacity);
  if (m_fd >= 0)
    ::close(m_fd);
}

std::byte *growing_segment::reserve(std::uint64_t nbytes) {
  if (nbytes > m_capacity || m_data == nullptr) {
    std::uint64_t capacity = std::max({nbytes, m_capacity + m_capacity / 2, std::uint64_t{64} << 20});
    try {
      m_data = static_cast<std::byte *>(detail::memory_resize(m_fd, m_data, m_capacity, capacity));
    } catch (const std::bad_alloc &) { // growth refused near the memory's end: just what was asked
      if (capacity == nbytes)
        throw;
      capacity = nbytes;
      m_data = static_cast<std::byte *>(detail::memory_resize(m_fd, m_data, m_capacity, capacity));
    }
    m_capacity = capacity;
  }
  return m_data;
}

std::shared_ptr<mapping> growing_segment::take(std::uint64_t nbytes) {
  if (nbytes > m_capacity)
    throw std::invalid_argument("ndshm: a growing segment finished past what was reserved");
  std::byte *data = reserve(0);
  m_data = static_cast<std::byte *>(detail::memory_resize(m_fd, data, m_capacity, nbytes));
  m_capacity = nbytes;
  std::shared_ptr<mapping> result(new mapping());
  result->m_data = m_data; // from here the mapping unmaps it, whatever happens next
  result->m_size = nbytes;
  result->m_access = access::read_write;
  result->m_session = m_session;
  m_data = nullptr;
  return result;
}

std::shared_ptr<mapping> growing_segment::finish(const segment_options &options) {
  auto result = take(options.size);
  detail::memory_seal(m_fd);
  detail::client_for(m_session).adopt(m_fd, result, options);
  return result;
}

std::shared_ptr<mapping> growing_segment::finish_private(std::uint64_t nbytes) { return take(nbytes); }

std::shared_ptr<mapping> attach_segment(std::string_view session, std::string_view name, access mode,
                                        std::uint64_t ticket) {
  detail::check_name("segment", name);
  return detail::client_for(session).attach(name, mode, ticket);
}

std::uint64_t issue_ticket(const mapping &segment, bool persist) {
  return detail::client_for(segment.session())
      .simple(detail::op::ticket, segment.name(), persist ? detail::flag_persist : 0u);
}

void unlink_segment(std::string_view session, std::string_view name) {
  detail::check_name("segment", name);
  detail::client_for(session).simple(detail::op::unlink, name);
}

std::vector<segment_status> list_segments(std::string_view session) {
  return detail::client_for(session).list();
}

std::size_t collect_orphans(std::string_view session, double min_age_seconds, std::string_view program) {
  return detail::client_for(session).collect(min_age_seconds, program);
}

std::vector<std::string> list_sessions() {
  auto prefix = detail::address_prefix();
  auto found = detail::listening_addresses(prefix);
  for (auto &name : found)
    name.erase(0, prefix.size());
  return found;
}

int broker_pid(std::string_view session) { return detail::client_for(session).pid(); }

void disconnect(std::string_view session) { detail::client_for(session).disconnect(); }

} // namespace ndshm
