// The session broker: holds segment descriptors while handles are in flight, hands them to attachers,
// and exits when its last client has gone (after a grace period if handles are still pending).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "detail/platform.hpp"
#include "detail/protocol.hpp"

namespace ndshm::broker {

/// One broker event loop over a listening socket.
class broker {
public:
  /// linger: how long to wait for a new client while pending handles or named segments remain.
  broker(detail::unique_fd listener, std::chrono::milliseconds linger);
  /// Serves until the last client has gone; returns the process exit code.
  int run();

private:
  using clock = std::chrono::steady_clock;
  struct segment {
    detail::unique_fd fd;
    std::uint64_t size = 0;
    segment_meta meta;
    std::uint32_t tickets = 0;
    bool named = false;
    clock::time_point created;
    std::unordered_map<int, std::uint32_t> holders; // connection -> mappings it holds
  };
  struct connection {
    detail::unique_fd sock;
    int pid = 0;
  };

  void accept_client();
  /// False when the client must be dropped (gone or speaking nonsense).
  bool serve(connection &client);
  void drop_client(int sock);
  void release(const std::string &name, int sock);
  void drop_if_unused(const std::string &name);
  bool reply(const connection &client, const detail::reply &message, int fd = -1);
  bool reply_list(const connection &client);

  detail::unique_fd m_listener;
  detail::unique_fd m_epoll;
  std::chrono::milliseconds m_linger;
  std::unordered_map<std::string, segment> m_segments;
  std::unordered_map<int, connection> m_clients;
  std::vector<std::byte> m_buffer;
  bool m_served = false;
};

} // namespace ndshm::broker
