// Encoding of broker messages: little-endian integers and length-prefixed strings.
#include "detail/protocol.hpp"

#include <charconv>
#include <cstdio>
#include <cstring>

#include <unistd.h>

namespace ndshm::detail {
namespace {

class writer {
public:
  template <class T> void put(T value) {
    auto at = m_bytes.size();
    m_bytes.resize(at + sizeof value);
    std::memcpy(m_bytes.data() + at, &value, sizeof value);
  }
  void put(const std::string &text) {
    put(static_cast<std::uint32_t>(text.size()));
    auto at = m_bytes.size();
    m_bytes.resize(at + text.size());
    std::memcpy(m_bytes.data() + at, text.data(), text.size());
  }
  std::vector<std::byte> take() { return std::move(m_bytes); }

private:
  std::vector<std::byte> m_bytes;
};

class reader {
public:
  explicit reader(std::span<const std::byte> bytes) : m_bytes(bytes) {}
  template <class T> bool get(T &value) {
    if (m_bytes.size() < sizeof value)
      return false;
    std::memcpy(&value, m_bytes.data(), sizeof value);
    m_bytes = m_bytes.subspan(sizeof value);
    return true;
  }
  bool get(std::string &text) {
    std::uint32_t length = 0;
    if (!get(length) || m_bytes.size() < length)
      return false;
    text.assign(reinterpret_cast<const char *>(m_bytes.data()), length);
    m_bytes = m_bytes.subspan(length);
    return true;
  }
  [[nodiscard]] bool done() const { return m_bytes.empty(); }

private:
  std::span<const std::byte> m_bytes;
};

} // namespace

std::vector<std::byte> encode(const request &message) {
  writer out;
  out.put(protocol_version);
  out.put(static_cast<std::uint32_t>(message.code));
  out.put(message.flags);
  out.put(message.size);
  out.put(message.ticket);
  out.put(message.name);
  out.put(message.meta.dtype);
  out.put(message.meta.shape);
  return out.take();
}

std::optional<request> decode_request(std::span<const std::byte> bytes) {
  reader in(bytes);
  request message;
  std::uint32_t version = 0, code = 0;
  if (!in.get(version) || version != protocol_version || !in.get(code) || !in.get(message.flags) ||
      !in.get(message.size) || !in.get(message.ticket) || !in.get(message.name) || !in.get(message.meta.dtype) ||
      !in.get(message.meta.shape) || !in.done())
    return std::nullopt;
  if (code < static_cast<std::uint32_t>(op::hello) || code > static_cast<std::uint32_t>(op::collect))
    return std::nullopt;
  message.code = static_cast<op>(code);
  return message;
}

std::vector<std::byte> encode(const reply &message) {
  writer out;
  out.put(static_cast<std::uint32_t>(message.code));
  out.put(message.value);
  out.put(message.size);
  out.put(message.meta.dtype);
  out.put(message.meta.shape);
  out.put(static_cast<std::uint8_t>(message.more));
  out.put(message.program);
  out.put(static_cast<std::uint32_t>(message.entries.size()));
  for (const auto &entry : message.entries) {
    out.put(entry.name);
    out.put(entry.size);
    out.put(entry.meta.dtype);
    out.put(entry.meta.shape);
    out.put(entry.tickets);
    out.put(static_cast<std::uint8_t>(entry.named));
    out.put(static_cast<std::uint8_t>(entry.persistent));
    out.put(entry.program);
    out.put(entry.age_seconds);
    out.put(static_cast<std::uint32_t>(entry.holders.size()));
    for (auto pid : entry.holders)
      out.put(pid);
  }
  return out.take();
}

std::optional<reply> decode_reply(std::span<const std::byte> bytes) {
  reader in(bytes);
  reply message;
  std::uint32_t code = 0, count = 0;
  std::uint8_t more = 0;
  if (!in.get(code) || !in.get(message.value) || !in.get(message.size) ||
      !in.get(message.meta.dtype) || !in.get(message.meta.shape) || !in.get(more) || !in.get(message.program) ||
      !in.get(count))
    return std::nullopt;
  message.code = static_cast<status>(code);
  message.more = more != 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    segment_status entry;
    std::uint8_t named = 0, persistent = 0;
    std::uint32_t holders = 0;
    if (!in.get(entry.name) || !in.get(entry.size) || !in.get(entry.meta.dtype) ||
        !in.get(entry.meta.shape) || !in.get(entry.tickets) || !in.get(named) || !in.get(persistent) ||
        !in.get(entry.program) || !in.get(entry.age_seconds) || !in.get(holders))
      return std::nullopt;
    entry.named = named != 0;
    entry.persistent = persistent != 0;
    entry.holders.resize(holders);
    for (auto &pid : entry.holders)
      if (!in.get(pid))
        return std::nullopt;
    message.entries.push_back(std::move(entry));
  }
  if (!in.done())
    return std::nullopt;
  return message;
}

std::size_t encoded_size(const segment_status &entry) {
  // Four length prefixes, size, tickets, named, persistent, age, the holder count, the holders.
  return 4 * 4 + entry.name.size() + entry.meta.dtype.size() + entry.meta.shape.size() + entry.program.size() +
         8 + 4 + 1 + 1 + 8 + 4 + 4 * entry.holders.size();
}

std::string address_prefix() { return "ndshm" + std::to_string(protocol_version) + "." + std::to_string(::getuid()) + "."; }

std::string socket_address(std::string_view session) { return address_prefix() + std::string(session); }

std::string format_program(int founder, std::uint64_t start_time, std::uint64_t secret) {
  char text[24];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(secret));
  return std::to_string(founder) + "-" + std::to_string(start_time) + "-" + text;
}

std::optional<program_claim> parse_program(std::string_view text) {
  auto number = [](std::string_view field, auto &value, int base) {
    auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value, base);
    return !field.empty() && ec == std::errc() && end == field.data() + field.size();
  };
  auto first = text.find('-');
  auto second = first == std::string_view::npos ? first : text.find('-', first + 1);
  if (second == std::string_view::npos)
    return std::nullopt;
  program_claim claim;
  std::uint64_t secret = 0;
  if (!number(text.substr(0, first), claim.founder, 10) ||
      !number(text.substr(first + 1, second - first - 1), claim.start_time, 10) ||
      text.size() - second - 1 != 16 || !number(text.substr(second + 1), secret, 16) || claim.founder <= 0)
    return std::nullopt;
  return claim;
}

} // namespace ndshm::detail
