// Whether the calling thread is a worker of a ThreadPoolRunner: such a thread must not destroy
// a pool (its own, possibly), so it leaves freeing a replaced region configuration to others.
#pragma once

namespace dogpile::detail {

bool on_pool_thread() noexcept;

}  // namespace dogpile::detail
