/*
 * runtime.c: process-wide state of the kernels.
 *
 * The SIMD level is chosen once at import from the CPU's features (the
 * wrapper may force a lower one through MLA_KERNEL). The thread count is an
 * explicit override when set, else OpenMP's own default, so that
 * OMP_NUM_THREADS and threadpoolctl keep working. Scratch memory is aligned
 * to 64 bytes, one cache line and one AVX-512 register.
 */
#ifdef __linux__
#define _GNU_SOURCE /* sched_getcpu and CPU_SET */
#else
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "mla.h"

#ifdef MLA_HAVE_OPENMP
#include <omp.h>
#endif

#if defined(MLA_HAVE_OPENMP) && defined(__unix__)
#include <ctype.h>
#include <pthread.h>
#define MLA_HAVE_ATFORK 1
#define MLA_HAVE_THREAD_PROBE 1
#endif

#if defined(MLA_HAVE_OPENMP) && defined(__linux__)
#include <sched.h>
#define MLA_HAVE_WORKER_PLACEMENT 1
#endif

#define MLA_ALIGNMENT 64

static mla_level selected_level = MLA_LEVEL_GENERIC;
static int thread_override = 0;

/*
 * libgomp's thread pool does not survive fork(): a child that enters a
 * parallel region after its parent has run one waits for threads that no
 * longer exist. Such a child runs every kernel on one thread instead.
 */
static volatile int parallel_used = 0;
static volatile int single_thread_child = 0;

#ifdef MLA_HAVE_ATFORK
static void
after_fork_in_child(void)
{
    if (parallel_used) {
        single_thread_child = 1;
    }
}
#endif

#ifdef MLA_HAVE_WORKER_PLACEMENT
/*
 * Keep the OpenMP worker threads off the CPU of the thread that starts a
 * region. On a virtual machine whose idle vCPUs the host deschedules,
 * Linux wakes a sleeping worker on the CPU of the thread that woke it.
 * That CPU is busy with the caller's share of the work, so the worker
 * waits for the scheduler's next tick. On a 2-vCPU KVM guest the first
 * 2-thread product after 0.1 s of idling took 7.8 ms instead of 0.34 ms.
 * With the workers kept off the caller's CPU it took 0.5 ms.
 *
 * libgomp keeps one pool of workers per calling thread. Each worker sets
 * its own mask in a small region of its own, so no thread is ever named
 * by id. Each calling thread remembers the mask it gave and the team size
 * it gave it to, and starts that region again only when the mask changes
 * or a larger team may have brought new threads. Nothing is changed when
 * the user binds threads (OMP_PROC_BIND) or inside another parallel
 * region.
 */
static _Thread_local int placed_team = 0;
static _Thread_local cpu_set_t placed_mask;

/*
 * Give each worker of a team of nthreads threads the affinity mask. The
 * calling thread yields until every worker has taken it, so that a worker
 * queued behind it on its CPU runs at once instead of at the next tick.
 */
static void
set_worker_masks(int nthreads, const cpu_set_t *mask)
{
    atomic_int done = 0;
#pragma omp parallel num_threads(nthreads)
    {
        if (omp_get_thread_num() == 0) {
            int workers = omp_get_num_threads() - 1;
            while (atomic_load(&done) < workers) {
                sched_yield();
            }
        }
        else {
            sched_setaffinity(0, sizeof *mask, mask);
            atomic_fetch_add(&done, 1);
        }
    }
}

/*
 * Give the workers the calling thread's CPUs less the one it runs on, or
 * all of them when too few are left for one worker each.
 */
static void
place_workers(int nthreads)
{
    if (omp_in_parallel() || omp_get_proc_bind() != omp_proc_bind_false) {
        return;
    }
    int cpu = sched_getcpu();
    cpu_set_t mask;
    if (cpu < 0 || sched_getaffinity(0, sizeof mask, &mask) != 0) {
        return;
    }
    if (CPU_ISSET(cpu, &mask) && CPU_COUNT(&mask) >= nthreads) {
        CPU_CLR(cpu, &mask);
    }
    if (nthreads <= placed_team && CPU_EQUAL(&mask, &placed_mask)) {
        return;
    }
    set_worker_masks(nthreads, &mask);
    placed_mask = mask;
    placed_team = nthreads;
}

/*
 * A team smaller than the placed one may end the pool's extra threads, and
 * libgomp starts new ones for the next larger team with the caller's mask.
 */
static void
note_team(int nthreads)
{
    if (nthreads < placed_team) {
        placed_team = nthreads;
    }
}
#endif

#ifdef MLA_HAVE_THREAD_PROBE
/*
 * libgomp ends the process ("Thread creation failed") when it cannot start
 * a worker, as under a small RLIMIT_AS or RLIMIT_NPROC. When a calling
 * thread needs a larger team than its pool may hold, mla first starts the
 * missing workers' worth of plain threads, with the stack size libgomp
 * gives its workers, then starts libgomp's workers for as many as started
 * and keeps the team to that size. A size that failed is not tried again
 * until the size changes.
 *
 * NOTE: one run in about ten of a stress test under a cap still ended the
 * process, by a path not yet found. In that test eight Python threads
 * call kernels while another changes the thread count every 3 ms.
 */
static _Thread_local int probed_team = 1;
static _Thread_local int failed_team = 0;
static pthread_mutex_t growth_lock = PTHREAD_MUTEX_INITIALIZER;

/* The workers' stack size, read once at import as libgomp reads it once. */
static size_t worker_stack = 0;

/* Parse a stack size as libgomp does: a number with B, K, M or G, K alone. */
static size_t
parse_stack_size(const char *text)
{
    if (text == NULL) {
        return 0;
    }
    char *end;
    unsigned long long size = strtoull(text, &end, 10);
    int digits = end != text;
    while (isspace((unsigned char)*end)) {
        end++;
    }
    unsigned long long unit = 1024;
    switch (toupper((unsigned char)*end)) {
    case 'B': unit = 1; end++; break;
    case 'K': end++; break;
    case 'M': unit = 1024ULL * 1024; end++; break;
    case 'G': unit = 1024ULL * 1024 * 1024; end++; break;
    default: break;
    }
    while (isspace((unsigned char)*end)) {
        end++;
    }
    if (!digits || *end != '\0' || size > SIZE_MAX / unit) {
        return 0;
    }
    return (size_t)(size * unit);
}

/* Wait at the gate until every probe thread has started, then end. */
static void *
probe_body(void *gate)
{
    pthread_mutex_lock(gate);
    pthread_mutex_unlock(gate);
    return NULL;
}

/* Start up to count threads at once, end them, and return how many started. */
static int
probe_threads(int count)
{
    pthread_t *ids = malloc((size_t)count * sizeof *ids);
    if (ids == NULL) {
        return 0;
    }
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        free(ids);
        return 0;
    }
    if (worker_stack > 0) {
        pthread_attr_setstacksize(&attr, worker_stack);
    }
    /*
     * A gate of this call's own: a child forked meanwhile must not inherit
     * a locked one that it would wait on, should it probe in turn.
     */
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    int started = 0;
    pthread_mutex_lock(&gate);
    while (started < count &&
           pthread_create(&ids[started], &attr, probe_body, &gate) == 0) {
        started++;
    }
    pthread_mutex_unlock(&gate);
    for (int i = 0; i < started; i++) {
        pthread_join(ids[i], NULL);
    }
    pthread_mutex_destroy(&gate);
    pthread_attr_destroy(&attr);
    free(ids);
    return started;
}
#endif

void
mla_runtime_init(void)
{
#ifdef MLA_HAVE_ATFORK
    static int registered = 0;
    if (!registered) {
        registered = pthread_atfork(NULL, NULL, after_fork_in_child) == 0;
    }
#endif
#ifdef MLA_HAVE_THREAD_PROBE
    /* An invalid OMP_STACKSIZE makes libgomp read GOMP_STACKSIZE. */
    worker_stack = parse_stack_size(getenv("OMP_STACKSIZE"));
    if (worker_stack == 0) {
        worker_stack = parse_stack_size(getenv("GOMP_STACKSIZE"));
    }
#endif
}

int
mla_team_threads(int nthreads)
{
#ifdef MLA_HAVE_THREAD_PROBE
    if (nthreads <= probed_team || omp_in_parallel()) {
        return nthreads;
    }
    if (nthreads == failed_team) {
        return probed_team;
    }
    /* A child forked from here on runs on one thread (see parallel_used). */
    parallel_used = 1;
    /*
     * One calling thread at a time probes and then starts its workers
     * while the room that the probe found is still free, before the
     * kernel's scratch memory and other threads' workers take it. GCC
     * drops a region with an empty body, so each thread counts in.
     */
    pthread_mutex_lock(&growth_lock);
    probed_team += probe_threads(nthreads - probed_team);
    if (probed_team > 1) {
        atomic_int members = 0;
#pragma omp parallel num_threads(probed_team)
        atomic_fetch_add(&members, 1);
    }
    pthread_mutex_unlock(&growth_lock);
    failed_team = probed_team < nthreads ? nthreads : 0;
    return probed_team < nthreads ? probed_team : nthreads;
#else
    return nthreads;
#endif
}

void
mla_note_parallel(int nthreads)
{
    parallel_used = 1;
#ifdef MLA_HAVE_THREAD_PROBE
    /* A smaller team may end the pool's extra workers (see note_team). */
    if (nthreads < probed_team) {
        probed_team = nthreads;
    }
#endif
#ifdef MLA_HAVE_WORKER_PLACEMENT
    note_team(nthreads);
    place_workers(nthreads);
#else
    (void)nthreads;
#endif
}

int
mla_cpu_supports(mla_level level)
{
    switch (level) {
    case MLA_LEVEL_GENERIC:
        return 1;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    case MLA_LEVEL_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case MLA_LEVEL_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f");
#endif
    default:
        return 0;
    }
}

mla_level
mla_get_level(void)
{
    return selected_level;
}

void
mla_set_level(mla_level level)
{
    selected_level = level;
}

const char *
mla_level_name(mla_level level)
{
    switch (level) {
    case MLA_LEVEL_AVX2:
        return "avx2";
    case MLA_LEVEL_AVX512:
        return "avx512";
    default:
        return "generic";
    }
}

int
mla_have_openmp(void)
{
#ifdef MLA_HAVE_OPENMP
    return 1;
#else
    return 0;
#endif
}

int
mla_get_num_threads(void)
{
    if (single_thread_child) {
        return 1;
    }
    if (thread_override > 0) {
        return thread_override;
    }
#ifdef MLA_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* n <= 0 clears the override and returns to OpenMP's default. */
void
mla_set_num_threads(int n)
{
    thread_override = n > 0 ? n : 0;
}

/*
 * Blocks returned by mla_alloc and not yet freed, for the leak tests. The
 * counter is atomic because kernels allocate from several Python threads
 * at once.
 */
static atomic_long live_allocations = 0;

/*
 * Return 64-byte aligned memory for count elements of size bytes, or NULL
 * when the byte count overflows size_t or the allocation fails. An empty
 * request still returns a valid block. Free it with mla_free.
 */
void *
mla_alloc(size_t count, size_t size)
{
    if (size != 0 && count > (SIZE_MAX - MLA_ALIGNMENT) / size) {
        return NULL;
    }
    size_t bytes = count * size;
    bytes = (bytes + MLA_ALIGNMENT - 1) / MLA_ALIGNMENT * MLA_ALIGNMENT;
    if (bytes == 0) {
        bytes = MLA_ALIGNMENT;
    }
    void *p = aligned_alloc(MLA_ALIGNMENT, bytes);
    if (p != NULL) {
        atomic_fetch_add(&live_allocations, 1);
    }
    return p;
}

void
mla_free(void *p)
{
    if (p != NULL) {
        atomic_fetch_sub(&live_allocations, 1);
    }
    free(p);
}

long
mla_live_allocations(void)
{
    return atomic_load(&live_allocations);
}
