// The session broker: holds segment descriptors while processes map them, handles are in flight or
// names are kept; counts each of its clients in a program (docs/design.md) and drops a program's names
// and handles in flight once its last client has gone and the linger has passed; exits when nothing
// is left to keep.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "detail/platform.hpp"
#include "detail/protocol.hpp"

namespace ndshm::broker {

/// One broker event loop over a listening socket.
class broker {
public:
  /// linger: how long a program's names and handles in flight outlive its last client (so that a
  /// consumer can still attach what a producer handed over just before it exited).
  broker(detail::unique_fd listener, std::chrono::milliseconds linger);
  /// Serves until no client is left and nothing is kept; returns the process exit code.
  int run();

private:
  using clock = std::chrono::steady_clock;
  struct segment {
    detail::unique_fd fd;
    std::uint64_t size = 0;
    segment_meta meta;
    std::unordered_map<std::uint64_t, std::string> tickets; // id -> issuing program ("": persistent)
    bool named = false;
    bool persistent = false; // its name outlives its program
    std::string program;     // creator
    clock::time_point created;
    std::unordered_map<int, std::uint32_t> holders; // connection -> mappings it holds
  };
  struct connection {
    detail::unique_fd sock;
    int pid = 0;
    std::string program; // empty until hello
  };
  struct program {
    std::uint32_t clients = 0;
    clock::time_point idle_since; // when clients went to 0
  };

  void accept_client();
  /// False when the client must be dropped (gone or speaking nonsense).
  bool serve(connection &client);
  void drop_client(int sock);
  /// The program a hello's claim puts this client in (see docs/design.md for what the check proves).
  std::string admit(int pid, const std::string &claim) const;
  /// Drops a program's names and tickets (its last client left longer than the linger ago).
  void expire(const std::string &name);
  /// The earliest time a program without clients expires, or nullopt.
  std::optional<clock::time_point> next_expiry() const;
  void release(const std::string &name, int sock);
  void drop_if_unused(const std::string &name);
  bool reply(const connection &client, const detail::reply &message, int fd = -1);
  bool reply_list(const connection &client);

  detail::unique_fd m_listener;
  detail::unique_fd m_epoll;
  std::chrono::milliseconds m_linger;
  std::unordered_map<std::string, segment> m_segments;
  std::unordered_map<int, connection> m_clients;
  std::map<std::string, program> m_programs;
  std::uint64_t m_next_ticket = 1;
  std::vector<std::byte> m_buffer;
  bool m_served = false;
};

} // namespace ndshm::broker
