// The broker's event loop and its bookkeeping of segments, holders and tickets.
#include "broker/broker.hpp"

#include <optional>
#include <system_error>

#include <sys/epoll.h>
#include <unistd.h>

namespace ndshm::broker {

using detail::op;
using detail::status;

namespace {
detail::reply answer(status code, std::uint64_t value = 0) {
  detail::reply message;
  message.code = code;
  message.value = value;
  return message;
}
} // namespace

broker::broker(detail::unique_fd listener, std::chrono::milliseconds linger)
    : m_listener(std::move(listener)), m_epoll(::epoll_create1(EPOLL_CLOEXEC)), m_linger(linger),
      m_buffer(detail::max_message) {
  if (!m_epoll)
    throw std::system_error(errno, std::generic_category(), "epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = m_listener.get();
  ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, m_listener.get(), &ev);
}

int broker::run() {
  std::optional<clock::time_point> idle_since = clock::now();
  for (;;) {
    int timeout = -1;
    if (m_clients.empty()) {
      auto now = clock::now();
      if (!idle_since)
        idle_since = now;
      // Nothing left to keep: exit at once. Pending handles or named segments, or waiting for the
      // client that started us: wait m_linger for a client, then exit (the kernel frees the rest).
      auto grace = m_segments.empty() && m_served ? clock::duration::zero() : clock::duration(m_linger);
      auto deadline = *idle_since + grace;
      if (now >= deadline)
        return 0;
      timeout = static_cast<int>(
          std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count());
    } else {
      idle_since.reset();
    }
    epoll_event events[64];
    int n = ::epoll_wait(m_epoll.get(), events, 64, timeout);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == m_listener.get()) {
        accept_client();
        continue;
      }
      auto it = m_clients.find(fd);
      bool keep = false;
      try {
        keep = it != m_clients.end() && serve(it->second);
      } catch (...) {
        keep = false; // one client's trouble (a truncated message, a failed send) must not end the session
      }
      if (it != m_clients.end() && !keep)
        drop_client(fd);
    }
  }
}

void broker::accept_client() {
  detail::unique_fd sock = detail::socket_accept(m_listener.get());
  if (!sock)
    return;
  detail::peer_credentials peer;
  try {
    peer = detail::socket_peer(sock.get());
  } catch (...) {
    return;
  }
  if (peer.uid != ::getuid())
    return; // only the user who owns the session may use it
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = sock.get();
  if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, sock.get(), &ev) != 0)
    return;
  int key = sock.get();
  m_clients.emplace(key, connection{std::move(sock), peer.pid});
  m_served = true;
}

void broker::drop_client(int sock) {
  std::vector<std::string> held;
  for (auto &[name, entry] : m_segments)
    if (entry.holders.erase(sock) != 0)
      held.push_back(name);
  for (const auto &name : held)
    drop_if_unused(name);
  ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, sock, nullptr);
  m_clients.erase(sock);
}


void broker::release(const std::string &name, int sock) {
  auto it = m_segments.find(name);
  if (it == m_segments.end())
    return;
  auto holder = it->second.holders.find(sock);
  if (holder == it->second.holders.end())
    return;
  if (--holder->second == 0)
    it->second.holders.erase(holder);
  drop_if_unused(name);
}

void broker::drop_if_unused(const std::string &name) {
  auto it = m_segments.find(name);
  if (it != m_segments.end() && it->second.tickets == 0 && !it->second.named && it->second.holders.empty())
    m_segments.erase(it);
}

bool broker::reply(const connection &client, const detail::reply &message, int fd) {
  return detail::socket_send(client.sock.get(), detail::encode(message), fd);
}

bool broker::reply_list(const connection &client) {
  detail::reply chunk;
  std::size_t bytes = 0;
  auto now = clock::now();
  for (const auto &[name, entry] : m_segments) {
    segment_status item;
    item.name = name;
    item.size = entry.size;
    item.meta = entry.meta;
    item.tickets = entry.tickets;
    item.named = entry.named;
    item.age_seconds = std::chrono::duration<double>(now - entry.created).count();
    for (const auto &[sock, count] : entry.holders) {
      auto c = m_clients.find(sock);
      if (c != m_clients.end())
        item.holders.push_back(c->second.pid);
    }
    bytes += detail::encoded_size(item);
    chunk.entries.push_back(std::move(item));
    if (bytes > detail::max_message / 2) {
      chunk.more = true;
      if (!reply(client, chunk))
        return false;
      chunk = {};
      bytes = 0;
    }
  }
  chunk.more = false;
  return reply(client, chunk);
}

bool broker::serve(connection &client) {
  detail::unique_fd fd;
  int sock = client.sock.get();
  auto n = detail::socket_recv(sock, m_buffer, &fd);
  if (!n)
    return false;
  auto message = detail::decode_request(std::span(m_buffer).first(*n));
  if (!message)
    return false;
  auto found = m_segments.find(message->name);
  bool known = found != m_segments.end();
  switch (message->code) {
  case op::hello:
    return reply(client, answer(status::ok, static_cast<std::uint64_t>(::getpid())));
  case op::create: {
    if (!fd)
      return false;
    if (known)
      return reply(client, answer(status::exists));
    segment entry;
    entry.fd = std::move(fd);
    entry.size = message->size;
    entry.meta = std::move(message->meta);
    entry.named = (message->flags & detail::flag_named) != 0;
    entry.created = clock::now();
    entry.holders[sock] = 1;
    m_segments.emplace(message->name, std::move(entry));
    return reply(client, answer(status::ok));
  }
  case op::attach: {
    if (!known)
      return reply(client, answer(status::not_found));
    segment &entry = found->second;
    if ((message->flags & detail::flag_redeem) != 0 && entry.tickets > 0)
      --entry.tickets;
    ++entry.holders[sock];
    detail::reply found_reply = answer(status::ok);
    found_reply.size = entry.size;
    found_reply.meta = entry.meta;
    return reply(client, found_reply, entry.fd.get());
  }
  case op::release:
    release(message->name, sock);
    return true;
  case op::hold:
    if (!known)
      return reply(client, answer(status::not_found));
    ++found->second.holders[sock];
    return reply(client, answer(status::ok));
  case op::ticket:
    if (!known)
      return reply(client, answer(status::not_found));
    ++found->second.tickets;
    return reply(client, answer(status::ok));
  case op::unlink:
    if (!known)
      return reply(client, answer(status::not_found));
    m_segments.erase(found); // mappings stay valid; the name is gone
    return reply(client, answer(status::ok));
  case op::list:
    return reply_list(client);
  case op::collect: {
    auto min_age = std::chrono::milliseconds(message->size);
    auto now = clock::now();
    std::uint64_t reclaimed = 0;
    for (auto it = m_segments.begin(); it != m_segments.end();) {
      if (it->second.holders.empty() && now - it->second.created >= min_age) {
        it = m_segments.erase(it);
        ++reclaimed;
      } else {
        ++it;
      }
    }
    return reply(client, answer(status::ok, reclaimed));
  }
  }
  return false;
}

} // namespace ndshm::broker
