// The handle string: everything needed to rebuild an array view over a shared segment, in under 1 KiB.
//
// Format: ndshm2:<session>:<name>:<ticket>:<offset>:<itemsize>:<shape>:<strides>:<descr>
// ticket is the broker's id of the ticket the handle redeems (0: none, the memory is kept alive otherwise).
// shape and strides are comma-separated integers (empty for 0-d arrays); descr is NumPy's
// array-interface descr ("<f8", "[('chr', '|S10'), ('pos', '<i4')]") and may contain anything.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ndshm {

/// Layout of one array view over a segment.
struct array_handle {
  std::string session;
  std::string name;
  std::uint64_t ticket = 0;  ///< redeemed by the attach (0: none)
  std::uint64_t offset = 0;  ///< of the first element, in bytes from the segment start
  std::uint64_t itemsize = 0;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides; ///< in bytes, may be negative
  std::string descr;

  [[nodiscard]] std::string to_string() const;
  /// Throws std::invalid_argument naming the part that is malformed.
  [[nodiscard]] static array_handle parse(std::string_view text);
  /// Lowest and one-past-highest byte offsets the view touches ({offset, offset} for an empty view).
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> extent() const;

  friend bool operator==(const array_handle &, const array_handle &) = default;
};

/// True for names usable as session or segment names: 1-200 characters of [A-Za-z0-9_.-].
[[nodiscard]] bool valid_name(std::string_view name) noexcept;

} // namespace ndshm
