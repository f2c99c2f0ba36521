// One process-local mapping of a shared segment; the segment lives while any mapping or broker reference does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ndshm {

namespace detail {
class client;
}
class growing_segment;

/// Access mode of a mapping.
enum class access { read_only, read_write };

/// A mapped shared segment. Owned through std::shared_ptr; unmapping happens when the last owner goes.
class mapping {
public:
  mapping(const mapping &) = delete;
  mapping &operator=(const mapping &) = delete;
  ~mapping();

  /// First byte of the segment (page aligned).
  [[nodiscard]] std::byte *data() const noexcept { return m_data; }
  /// Size the creator asked for, in bytes (the mapping itself is rounded up to whole pages).
  [[nodiscard]] std::uint64_t size() const noexcept { return m_size; }
  [[nodiscard]] bool writable() const noexcept { return m_access == access::read_write; }
  [[nodiscard]] const std::string &session() const noexcept { return m_session; }
  [[nodiscard]] const std::string &name() const noexcept { return m_name; }

  /// Maps fd (which the caller may close afterwards). Not for direct use: see create_segment/attach_segment.
  static std::shared_ptr<mapping> map(int fd, std::uint64_t size, access mode, std::string session,
                                      std::string name);

private:
  friend class detail::client;
  friend class growing_segment;
  mapping() = default;
  bool m_registered = false; ///< counted by the broker as held by this process
  std::byte *m_data = nullptr;
  std::uint64_t m_size = 0;
  access m_access = access::read_only;
  std::string m_session;
  std::string m_name;
};

} // namespace ndshm
