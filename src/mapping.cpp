// mapping: one mmap of a segment, unmapped (and reported to the broker) when its last owner goes.
#include "ndshm/mapping.hpp"

#include "detail/client.hpp"
#include "detail/platform.hpp"

namespace ndshm {

std::shared_ptr<mapping> mapping::map(int fd, std::uint64_t size, access mode, std::string session,
                                      std::string name) {
  std::shared_ptr<mapping> result(new mapping());
  result->m_data = static_cast<std::byte *>(detail::memory_map(fd, size, mode == access::read_write));
  result->m_size = size;
  result->m_access = mode;
  result->m_session = std::move(session);
  result->m_name = std::move(name);
  return result;
}

mapping::~mapping() {
  if (m_data != nullptr)
    detail::memory_unmap(m_data, m_size);
  if (m_registered)
    detail::on_unmapped(m_session, m_name);
}

} // namespace ndshm
