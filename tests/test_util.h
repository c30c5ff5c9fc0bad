/*
 * test_util.h -- the minimal harness every test program uses: CHECK macros that count
 * failures and report file:line, float64 comparison helpers, and a deterministic RNG for
 * random shapes and values. Each test program exits non-zero if any check failed.
 */
#ifndef LX_TEST_UTIL_H
#define LX_TEST_UTIL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lx.h"

static int t_failures = 0;
static int t_checks = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        t_checks++;                                                                   \
        if (!(cond)) {                                                                \
            t_failures++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                             \
    } while (0)

#define CHECK_MSG(cond, ...)                                                          \
    do {                                                                              \
        t_checks++;                                                                   \
        if (!(cond)) {                                                                \
            t_failures++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

/* Expects status OK; prints the thread's error message otherwise. */
#define CHECK_OK(expr)                                                                \
    do {                                                                              \
        lx_status st_ = (expr);                                                       \
        t_checks++;                                                                   \
        if (st_ != LX_OK) {                                                           \
            t_failures++;                                                             \
            fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #expr, \
                    lx_status_string(st_), lx_error_message());                       \
            lx_clear_error();                                                         \
        }                                                                             \
    } while (0)

/* Expects the thread error to be `status`, then clears it. */
#define CHECK_ERROR(status)                                                           \
    do {                                                                              \
        t_checks++;                                                                   \
        if (lx_error() != (status)) {                                                 \
            t_failures++;                                                             \
            fprintf(stderr, "%s:%d: expected %s, got %s (%s)\n", __FILE__, __LINE__,  \
                    lx_status_string(status), lx_status_string(lx_error()),           \
                    lx_error_message());                                              \
        }                                                                             \
        lx_clear_error();                                                             \
    } while (0)

#define RUN_TEST(fn)                                                                  \
    do {                                                                              \
        int before_ = t_failures;                                                     \
        fn();                                                                         \
        if (lx_error() != LX_OK) {                                                    \
            fprintf(stderr, "%s: left an unexpected error: %s\n", #fn,                \
                    lx_error_message());                                              \
            t_failures++;                                                             \
            lx_clear_error();                                                         \
        }                                                                             \
        lx_sweep();                                                                   \
        printf("%-48s %s\n", #fn, t_failures == before_ ? "ok" : "FAILED");          \
    } while (0)

static inline int test_finish(void) {
    printf("%d checks, %d failed\n", t_checks, t_failures);
    return t_failures ? 1 : 0;
}

/* xorshift64*: deterministic, seeded per test. */
static uint64_t t_rng_state = 0x9e3779b97f4a7c15ull;
static inline void t_seed(uint64_t s) { t_rng_state = s ? s : 0x9e3779b97f4a7c15ull; }
static inline uint64_t t_next(void) {
    t_rng_state ^= t_rng_state >> 12;
    t_rng_state ^= t_rng_state << 25;
    t_rng_state ^= t_rng_state >> 27;
    return t_rng_state * 0x2545f4914f6cdd1dull;
}
/* uniform in [lo, hi) */
static inline double t_uniform(double lo, double hi) {
    return lo + (hi - lo) * (double)(t_next() >> 11) * (1.0 / 9007199254740992.0);
}
static inline int t_int(int lo, int hi) { return lo + (int)(t_next() % (uint64_t)(hi - lo + 1)); }

/* |got - want| <= atol + rtol * |want|, NaNs equal, infinities equal when same sign */
static inline int t_close(double got, double want, double rtol, double atol) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

/* Compares n floats with a float64 reference; reports the first few mismatches. */
static inline int t_check_close_f32(const char *what, const float *got, const double *want,
                                    size_t n, double rtol, double atol) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t_close(got[i], want[i], rtol, atol)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: got %.9g want %.9g\n", what, i, (double)got[i],
                        want[i]);
            bad++;
        }
    }
    t_checks++;
    if (bad) {
        t_failures++;
        fprintf(stderr, "%s: %d of %zu values outside rtol %g atol %g\n", what, bad, n, rtol,
                atol);
    }
    return bad == 0;
}

/* Runs this test program again as `self arg` with env set (name, value, ..., NULL: for
 * settings read once per process) and returns its exit status, or -1 when it could not run
 * or did not exit normally. */
static inline int t_run_self(const char *self, const char *arg, const char *const *env) {
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; env && env[i] && env[i + 1]; i += 2) setenv(env[i], env[i + 1], 1);
        execl(self, self, arg, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}


/* Monotonic seconds, for the run times tests print. */
static inline double t_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The real model (env LX_TEST_GGUF, which scripts/fetch_model.sh fills), or NULL after saying
 * why: the caller then exits 77, which CTest counts as skipped. */
static inline const char *t_real_model(void) {
    const char *path = getenv("LX_TEST_GGUF");
    if (!path || access(path, R_OK) != 0) {
        printf("skipped: LX_TEST_GGUF (%s) is not there (scripts/fetch_model.sh fetches it)\n",
               path ? path : "unset");
        return NULL;
    }
    return path;
}

/* A fixture folder under LX_FIXTURES (CTest sets it; else ../shared/fixtures). The result is
 * one static buffer: valid until the next call. */
static inline const char *t_fixture(const char *name) {
    static char path[1024];
    const char *root = getenv("LX_FIXTURES");
    snprintf(path, sizeof path, "%s/%s", root ? root : "../shared/fixtures", name);
    return path;
}

/* Largest |a - b| of a row over the row's largest |b| (|a - b| when b is all zeros). */
static inline double t_row_rel_err(const float *a, const float *b, int n) {
    double d = 0, m = 0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

/* What a generation hands its callbacks, for comparing with a reference: the ids and every
 * logits row (lx_gen_params.on_token = t_on_token, .on_logits = t_on_logits, .user = &c). */
typedef struct {
    int32_t ids[1024];
    int n;
    float *rows;
    size_t n_rows, cap_rows;
} t_gen_collect;

static inline bool t_on_token(void *u, int32_t id, const char *text, size_t len) {
    (void)text;
    (void)len;
    t_gen_collect *c = u;
    if (id >= 0 && c->n < 1024) c->ids[c->n++] = id;
    return true;
}

/* Appends n rows of vocab logits to *rows (grown as needed; aborts if the host is out). */
static inline void t_rows_append(float **rows, size_t *n_rows, size_t *cap_rows,
                                 const float *add, int n, int vocab) {
    if (*n_rows + (size_t)n > *cap_rows) {
        *cap_rows = (*n_rows + (size_t)n) * 2;
        *rows = realloc(*rows, sizeof(float) * *cap_rows * (size_t)vocab);
        if (!*rows) abort(); /* the test itself out of memory: nothing to check any more */
    }
    memcpy(*rows + *n_rows * (size_t)vocab, add, sizeof(float) * (size_t)n * (size_t)vocab);
    *n_rows += (size_t)n;
}

static inline void t_on_logits(void *u, const float *rows, int n, int vocab) {
    t_gen_collect *c = u;
    t_rows_append(&c->rows, &c->n_rows, &c->cap_rows, rows, n, vocab);
}

#endif
