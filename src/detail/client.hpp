// Private hook between mapping and the session client: a mapping tells its session when it goes away.
#pragma once

#include <string>

namespace ndshm::detail {

/// Called by ~mapping for registered mappings: this process maps name once less.
void on_unmapped(const std::string &session, const std::string &name) noexcept;

} // namespace ndshm::detail
