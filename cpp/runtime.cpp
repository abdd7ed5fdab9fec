// runtime.cpp: whether the build has OpenMP, and its thread count.
//
// Contract: plain C++17. Without OpenMP the library runs on one thread: openmp_enabled() is
// false, get_num_threads() is 1 and set_num_threads() changes nothing.
#include "cnnkit.h"

#include <atomic>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnkit {

namespace {
// OpenMP keeps the thread count per OS thread, but a user sets it once for the whole library and
// then may call kernels from any Python thread: remember the choice here (0: OpenMP's default).
std::atomic<int> chosen_threads{0};
thread_local int local_threads = 0;  // set_local_num_threads: this OS thread's own count
thread_local int before_local = 0;  // the thread's OpenMP count when its own was set
}  // namespace

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

int get_num_threads() {
#ifdef _OPENMP
    // The number of threads the next parallel region (every kernel's) will use.
    const int chosen = chosen_threads.load();
    return chosen > 0 ? chosen : omp_get_max_threads();
#else
    return 1;
#endif
}

void set_num_threads(int n) {
    // n >= 1 (the bindings check it).
#ifdef _OPENMP
    chosen_threads.store(n);
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

void adopt_num_threads() {
#ifdef _OPENMP
    const int chosen = local_threads > 0 ? local_threads : chosen_threads.load();
    if (chosen > 0 && omp_get_max_threads() != chosen) omp_set_num_threads(chosen);
#endif
}

void set_local_num_threads(int n) {
    // n >= 0 (the bindings check it); 0 hands the thread back to the library-wide count, or
    // OpenMP's default where none was chosen.
#ifdef _OPENMP
    if (n > 0 && local_threads == 0) before_local = omp_get_max_threads();
    if (n == 0 && local_threads > 0 && chosen_threads.load() == 0) omp_set_num_threads(before_local);
    local_threads = n;
#else
    (void)n;
#endif
}

}  // namespace cnnkit
