// Runs numbered jobs on a bounded number of threads, each with its own tile scratch. The
// first exception stops the rest (jobs not started are skipped) and is rethrown.
#pragma once

#include <cstddef>
#include <functional>

#include "lora/patch_kernel.hpp"

namespace weightmap::lora {

void run_jobs(std::size_t jobs, unsigned workers,
              const std::function<void(std::size_t job, TileScratch& scratch)>& run);

}  // namespace weightmap::lora
