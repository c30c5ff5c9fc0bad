/*
 * parallel.c -- the CPU kernels' thread pool (one copy, not per variant).
 *
 * A job is split into chunks handed out through an atomic counter; the calling thread works
 * too, so a pool of N threads has N-1 helpers. One job runs at a time: a second caller (the
 * async worker and an inline evaluation at once) runs its job on its own thread instead of
 * queueing behind the first. Small jobs (n < 2 * grain) never leave the caller.
 *
 * Between jobs a helper spins for 50 us (LX_SPIN_US; 0: never) before it sleeps on the
 * condition variable, and the caller spins as long for the helpers to finish before it sleeps: an inference step runs
 * kernels back to back, and a futex wake-up costs tens of microseconds on a virtual machine,
 * comparable to a kernel's run time. The spins are short (a sleeping pool costs nothing), and
 * a job found while spinning is taken under the same lock as before.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#include "backend/cpu/cpu.h"

#define MAX_THREADS 256

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int n_threads;      /* configured (including the caller) */
static int n_started;      /* helper threads running */
static uint64_t job_id;
static lx_range_fn job_fn;
static void *job_ctx;
static int64_t job_n, job_chunk;
static _Atomic int64_t job_next;
static int job_active_helpers;
/* lock-free mirrors of job_id and job_active_helpers, read by the spins */
static _Atomic uint64_t job_seq;
static _Atomic uint64_t helpers_busy;

static int64_t spin_ns = -1; /* from LX_SPIN_US, read once (spin_budget) */

static int64_t spin_budget(void) {
    int64_t ns = __atomic_load_n(&spin_ns, __ATOMIC_RELAXED);
    if (ns < 0) {
        const char *env = getenv("LX_SPIN_US");
        long us = env && *env ? strtol(env, NULL, 10) : 50;
        ns = us < 0 ? 0 : (us > 100000 ? 100000000 : (int64_t)us * 1000);
        __atomic_store_n(&spin_ns, ns, __ATOMIC_RELAXED);
    }
    return ns;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins while (*v == value) != stop_when_equal, for at most the spin budget. */
static void spin_until(_Atomic uint64_t *v, uint64_t value, bool stop_when_equal) {
    int64_t budget = spin_budget();
    if (budget == 0) return;
    int64_t until = now_ns() + budget;
    for (int i = 1;; i++) {
        if ((atomic_load_explicit(v, memory_order_acquire) == value) == stop_when_equal) return;
        CPU_RELAX();
        if (i % 64 == 0 && now_ns() > until) return;
    }
}

static int default_threads(void) {
    const char *env = getenv("LX_NUM_THREADS");
    if (env && atoi(env) > 0) return atoi(env) > MAX_THREADS ? MAX_THREADS : atoi(env);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > MAX_THREADS ? MAX_THREADS : (int)n);
}

int lx_num_threads(void) {
    pthread_mutex_lock(&state_lock);
    if (!n_threads) n_threads = default_threads();
    int n = n_threads;
    pthread_mutex_unlock(&state_lock);
    return n;
}

int lx_set_num_threads(int n) {
    int old = lx_num_threads();
    pthread_mutex_lock(&state_lock);
    n_threads = n <= 0 ? default_threads() : (n > MAX_THREADS ? MAX_THREADS : n);
    pthread_mutex_unlock(&state_lock);
    return old;
}

static void run_chunks(void) {
    for (;;) {
        int64_t b = atomic_fetch_add_explicit(&job_next, job_chunk, memory_order_relaxed);
        if (b >= job_n) break;
        int64_t e = b + job_chunk < job_n ? b + job_chunk : job_n;
        job_fn(job_ctx, b, e);
    }
}

static void *helper_main(void *arg) {
    int index = (int)(intptr_t)arg; /* helper i joins jobs while i < n_threads - 1 */
    uint64_t seen = 0;
    for (;;) {
        spin_until(&job_seq, seen, false); /* the next job, if it comes soon */
        pthread_mutex_lock(&state_lock);
        while (job_id == seen || index >= n_threads - 1) {
            if (job_id != seen) seen = job_id; /* not wanted for this job */
            pthread_cond_wait(&work_cond, &state_lock);
        }
        seen = job_id;
        job_active_helpers++;
        atomic_fetch_add_explicit(&helpers_busy, 1, memory_order_relaxed);
        pthread_mutex_unlock(&state_lock);
        run_chunks();
        pthread_mutex_lock(&state_lock);
        atomic_fetch_sub_explicit(&helpers_busy, 1, memory_order_release);
        if (--job_active_helpers == 0) pthread_cond_signal(&done_cond);
        pthread_mutex_unlock(&state_lock);
    }
    return NULL;
}

void lx_parallel_for(int64_t n, int64_t grain, lx_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int threads = lx_num_threads();
    if (threads <= 1 || n < 2 * grain || pthread_mutex_trylock(&pool_lock) != 0) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&state_lock);
    while (n_started < threads - 1) {
        pthread_t t;
        if (pthread_create(&t, NULL, helper_main, (void *)(intptr_t)n_started) != 0) break;
        pthread_detach(t);
        n_started++;
    }
    /* a helper that woke late for the previous job may still be in run_chunks, reading
     * job_n and job_chunk: rewriting them under it is a data race, and a chunk size read
     * half from each job can run part of this job twice or skip it */
    while (job_active_helpers > 0) pthread_cond_wait(&done_cond, &state_lock);
    int workers = n_started + 1 < threads ? n_started + 1 : threads;
    int64_t chunks = n / grain;
    if (chunks > (int64_t)workers * 16) chunks = (int64_t)workers * 16; /* slack for balance */
    job_fn = fn;
    job_ctx = ctx;
    job_n = n;
    job_chunk = (n + chunks - 1) / chunks;
    atomic_store(&job_next, 0);
    job_id++;
    atomic_store_explicit(&job_seq, job_id, memory_order_release);
    pthread_cond_broadcast(&work_cond);
    pthread_mutex_unlock(&state_lock);

    run_chunks();

    spin_until(&helpers_busy, 0, true); /* the helpers, if they finish soon */
    pthread_mutex_lock(&state_lock);
    /* helpers that woke for this job finish their chunks; late wakers find none left */
    while (job_active_helpers > 0) pthread_cond_wait(&done_cond, &state_lock);
    job_fn = NULL;
    pthread_mutex_unlock(&state_lock);
    pthread_mutex_unlock(&pool_lock);
}
