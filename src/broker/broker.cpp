// The broker's event loop and its bookkeeping of segments, holders, tickets and programs.
#include "broker/broker.hpp"

#include <algorithm>
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
  const auto started = clock::now();
  for (;;) {
    auto now = clock::now();
    std::vector<std::string> expired;
    for (const auto &[name, state] : m_programs)
      if (state.clients == 0 && now >= state.idle_since + m_linger)
        expired.push_back(name);
    for (const auto &name : expired)
      expire(name);
    // Nothing left to keep: exit at once (the kernel frees what only we held). Before the first
    // client (the one that started us), wait m_linger for it.
    if (m_clients.empty() && m_segments.empty() && (m_served || now >= started + m_linger))
      return 0;
    std::optional<clock::time_point> deadline = next_expiry();
    if (!m_served && (!deadline || started + m_linger < *deadline))
      deadline = started + m_linger;
    int timeout = -1; // only persistent segments left, or clients: wait for a client's request
    if (deadline)
      timeout = static_cast<int>(
          std::max<long long>(0, std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count()));
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

std::optional<broker::clock::time_point> broker::next_expiry() const {
  std::optional<clock::time_point> first;
  for (const auto &[name, state] : m_programs)
    if (state.clients == 0 && (!first || state.idle_since + m_linger < *first))
      first = state.idle_since + m_linger;
  return first;
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
  m_clients.emplace(key, connection{std::move(sock), peer.pid, {}});
  m_served = true;
}

void broker::drop_client(int sock) {
  if (auto c = m_clients.find(sock); c != m_clients.end() && !c->second.program.empty()) {
    auto p = m_programs.find(c->second.program);
    if (p != m_programs.end() && --p->second.clients == 0)
      p->second.idle_since = clock::now();
  }
  std::vector<std::string> held;
  for (auto &[name, entry] : m_segments)
    if (entry.holders.erase(sock) != 0)
      held.push_back(name);
  for (const auto &name : held)
    drop_if_unused(name);
  ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, sock, nullptr);
  m_clients.erase(sock);
}


std::string broker::admit(int pid, const std::string &claim) const {
  if (auto parsed = detail::parse_program(claim)) {
    if (m_programs.contains(claim))
      return claim; // a program this broker counts already: the claimant knows its secret
    // A new program: the claimant must be its founder (pid and start time) or descend from it.
    int at = pid;
    for (int depth = 0; depth < 256 && at > 0; ++depth) {
      auto info = detail::process_stat(at);
      if (!info)
        break;
      if (at == parsed->founder) {
        if (info->start_time == parsed->start_time)
          return claim;
        break;
      }
      at = info->parent;
    }
  }
  // Refused (malformed, or founded by a process the claimant does not descend from): a program of its own.
  auto self = detail::process_stat(pid);
  return detail::format_program(pid, self ? self->start_time : 0, detail::random_u64());
}

void broker::expire(const std::string &name) {
  m_programs.erase(name);
  std::vector<std::string> touched;
  for (auto it = m_segments.begin(); it != m_segments.end();) {
    segment &entry = it->second;
    if (entry.named && !entry.persistent && entry.program == name) {
      it = m_segments.erase(it); // as unlink: mappings stay valid, the name is gone
      continue;
    }
    if (std::erase_if(entry.tickets, [&](const auto &ticket) { return ticket.second == name; }) != 0)
      touched.push_back(it->first);
    ++it;
  }
  for (const auto &segment_name : touched)
    drop_if_unused(segment_name);
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
  if (it != m_segments.end() && it->second.tickets.empty() && !it->second.named && it->second.holders.empty())
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
    item.tickets = static_cast<std::uint32_t>(entry.tickets.size());
    item.named = entry.named;
    item.program = entry.program;
    item.persistent = entry.persistent || std::any_of(entry.tickets.begin(), entry.tickets.end(),
                                                      [](const auto &ticket) { return ticket.second.empty(); });
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
  if (client.program.empty() != (message->code == op::hello))
    return false; // hello comes first, and once
  auto found = m_segments.find(message->name);
  bool known = found != m_segments.end();
  switch (message->code) {
  case op::hello: {
    client.program = admit(client.pid, message->name);
    ++m_programs[client.program].clients;
    detail::reply welcome = answer(status::ok, static_cast<std::uint64_t>(::getpid()));
    welcome.program = client.program;
    return reply(client, welcome);
  }
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
    entry.persistent = entry.named && (message->flags & detail::flag_persist) != 0;
    entry.program = client.program;
    entry.created = clock::now();
    entry.holders[sock] = 1;
    m_segments.emplace(message->name, std::move(entry));
    return reply(client, answer(status::ok));
  }
  case op::attach: {
    if (!known)
      return reply(client, answer(status::not_found));
    segment &entry = found->second;
    if (message->ticket != 0)
      entry.tickets.erase(message->ticket); // already redeemed (a pickle loaded twice): attach all the same
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
  case op::ticket: {
    if (!known)
      return reply(client, answer(status::not_found));
    std::uint64_t id = m_next_ticket++;
    found->second.tickets[id] = (message->flags & detail::flag_persist) != 0 ? std::string() : client.program;
    return reply(client, answer(status::ok, id));
  }
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
      if (it->second.holders.empty() && now - it->second.created >= min_age &&
          (message->name.empty() || it->second.program == message->name)) {
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
