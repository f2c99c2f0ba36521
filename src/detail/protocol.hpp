// Messages between a process and its session's broker (one SOCK_SEQPACKET message each way).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ndshm/session.hpp"

namespace ndshm::detail {

inline constexpr std::uint32_t protocol_version = 1;
/// Largest message either side sends; LIST replies are split to stay below it.
inline constexpr std::size_t max_message = 64 * 1024;

enum class op : std::uint32_t {
  hello = 1,   ///< -> ok, value = broker pid
  create,      ///< + fd; flags: named -> ok | exists
  attach,      ///< flags: redeem -> ok + fd, size, meta | not_found
  release,     ///< no reply: this process no longer maps name
  hold,        ///< after fork/reconnect: this process maps name -> ok | not_found
  ticket,      ///< -> ok | not_found
  unlink,      ///< -> ok | not_found
  list,        ///< -> ok with entries, repeated while more
  collect,     ///< size = min age in ms -> ok, value = reclaimed count
};

enum class status : std::uint32_t { ok = 0, not_found, exists, bad_request };

inline constexpr std::uint32_t flag_named = 1;
inline constexpr std::uint32_t flag_redeem = 2;

struct request {
  op code = op::hello;
  std::uint32_t flags = 0;
  std::uint64_t size = 0;
  std::string name;
  segment_meta meta;
};

struct reply {
  status code = status::ok;
  std::uint64_t value = 0;
  std::uint64_t size = 0;
  segment_meta meta;
  std::vector<segment_status> entries;
  bool more = false;
};

[[nodiscard]] std::vector<std::byte> encode(const request &message);
[[nodiscard]] std::vector<std::byte> encode(const reply &message);
/// nullopt for a malformed message.
[[nodiscard]] std::optional<request> decode_request(std::span<const std::byte> bytes);
[[nodiscard]] std::optional<reply> decode_reply(std::span<const std::byte> bytes);

/// Encoded size of one list entry, to split LIST replies.
[[nodiscard]] std::size_t encoded_size(const segment_status &entry);

} // namespace ndshm::detail
