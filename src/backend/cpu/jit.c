/*
 * jit.c -- compiling generated C into loaded code (see jit.h).
 *
 * One compile: write the source into the cache directory under a unique temporary name, run
 * the compiler (posix_spawnp, no shell, output to a log file), rename the object to
 * <hash>.so (atomic: a concurrent process sees the whole file or none), dlopen it, look up the
 * symbol. A later process finds <hash>.so and only loads it. Objects are never unloaded: the
 * functions stay valid for the life of the process.
 *
 * Flags: the -march of the kernel variant the code stands in for, so it uses the same
 * instructions (FMA where the variant has it), and -ffp-contract=off, so the compiler does not
 * fuse a multiply of one op with an add of the next, which the separate kernels cannot do;
 * the formulas that want FMA say so explicitly (elementwise_ops.h). -fno-math-errno and
 * -fno-trapping-math change no value, only allow vectorising (sqrt without the errno call,
 * if-converted selects).
 */
#include "backend/cpu/jit.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lx.h"

extern char **environ;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static lx_jit_mode g_mode = LX_JIT_HOT;
static int g_verbose = 0; /* 1: report failures; 2: also keep every generated source */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* one compile at a time */
static char g_dir[4096];   /* the cache directory, "" until chosen */
static bool g_broken = false; /* no usable directory or no compiler: stop trying */
static bool g_private = false; /* g_dir is this process's own temporary directory */

static void remove_private_dir(void) { rmdir(g_dir); }

/* fork: the compile lock is taken across it, so a child never inherits it held by a thread
 * (the background compiler) that does not exist there; a fork waits for a compile in flight.
 * The compiler itself is started with posix_spawnp, which runs no fork handlers. */
static void fork_prepare(void) { pthread_mutex_lock(&g_lock); }
static void fork_release(void) { pthread_mutex_unlock(&g_lock); }

static void read_env(void) {
    pthread_atfork(fork_prepare, fork_release, fork_release);
    const char *m = getenv("LX_JIT");
    if (m && (strcmp(m, "0") == 0 || strcmp(m, "off") == 0)) g_mode = LX_JIT_OFF;
    else if (m && strcmp(m, "always") == 0) g_mode = LX_JIT_ALWAYS;
    const char *v = getenv("LX_JIT_VERBOSE");
    g_verbose = v && *v ? atoi(v) : 0;
}

static lx_jit_stats g_stats; /* under g_lock */

lx_jit_mode lx_jit_mode_get(void) {
    pthread_once(&g_once, read_env);
    return __atomic_load_n(&g_mode, __ATOMIC_RELAXED);
}

void lx_jit_set_mode(lx_jit_mode mode) {
    pthread_once(&g_once, read_env);
    __atomic_store_n(&g_mode, mode, __ATOMIC_RELAXED);
}

lx_jit_stats lx_jit_stats_get(void) {
    pthread_mutex_lock(&g_lock);
    lx_jit_stats s = g_stats;
    pthread_mutex_unlock(&g_lock);
    return s;
}

static void say(const char *fmt, ...) {
    if (!g_verbose) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("lx jit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static bool choose_dir(void) {
    if (g_dir[0]) return true;
    char want[4096];
    const char *env = getenv("LX_JIT_CACHE"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    int w = -1;
    if (env && *env) w = snprintf(want, sizeof want, "%s", env);
    else if (xdg && *xdg == '/') w = snprintf(want, sizeof want, "%s/lx/jit", xdg);
    else if (home && *home == '/') w = snprintf(want, sizeof want, "%s/.cache/lx/jit", home);
    if (w > 0 && (size_t)w < sizeof want - 64 && lx_jit_make_dirs(want) && lx_jit_dir_ok(want)) {
        memcpy(g_dir, want, (size_t)w + 1);
        return true;
    }
    if (w > 0) say("cache directory %s is not usable (missing, not ours or writable by others)", want);
    /* a private directory for this process */
    const char *tmp = getenv("TMPDIR");
    w = snprintf(want, sizeof want, "%s/lx-jit-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp");
    if (w <= 0 || (size_t)w >= sizeof want - 64 || !mkdtemp(want)) return false;
    memcpy(g_dir, want, (size_t)w + 1);
    g_private = true; /* objects are deleted once loaded, the directory at exit */
    atexit(remove_private_dir);
    return true;
}

static bool write_file(const char *path, const char *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    size_t done = 0;
    while (done < len) {
        ssize_t k = write(fd, data + done, len - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        done += (size_t)k;
    }
    return close(fd) == 0 && done == len;
}

static void print_log(const char *path) {
    if (!g_verbose) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof line, f) && lines++ < 40) fputs(line, stderr);
    fclose(f);
}

typedef enum { RUN_OK, RUN_FAILED, RUN_NOEXEC } run_result;

/* Runs argv with stdout and stderr into log. */
static run_result run(char *const argv[], const char *log) {
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) return RUN_FAILED;
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        say("cannot run %s: %s", argv[0], strerror(rc));
        return RUN_NOEXEC;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return RUN_FAILED;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? RUN_OK : RUN_FAILED;
}

static const char *march_flag(const char *variant) {
#if defined(__x86_64__) || defined(_M_X64)
    if (strcmp(variant, "v2") == 0) return "-march=x86-64-v2";
    if (strcmp(variant, "v3") == 0) return "-march=x86-64-v3";
    if (strcmp(variant, "v4") == 0) return "-march=x86-64-v4";
    return "-march=x86-64";
#else
    (void)variant;
    return "-O2"; /* a harmless repeat: the generic build uses no -march */
#endif
}

void *lx_jit_compile(const char *source, size_t len, const char *symbol, const char *variant) {
    if (lx_jit_mode_get() == LX_JIT_OFF) return NULL;
    const char *cc = getenv("LX_JIT_CC");
    if (!cc || !*cc) cc = "cc";
    const char *march = march_flag(variant);
    /* -O3 for its vectoriser and scheduling (~1.3x faster GELU chains than -O2); without
     * loop peeling, which only adds compile time on the constant-trip block loops */
    char *argv[] = {(char *)cc, "-std=c11", "-D_GNU_SOURCE", "-O3", "-fno-peel-loops",
                    (char *)march, "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
                    "-fPIC", "-shared", "-o", NULL, NULL, "-lm", NULL};
    /* the key: source, compiler, flags and lx's version */
    uint64_t h = lx_jit_hash(source, len, LX_JIT_HASH_SEED);
    for (int i = 0; argv[i]; i++) h = lx_jit_hash(argv[i], strlen(argv[i]) + 1, h);
    h = lx_jit_hash(LX_VERSION_STRING, sizeof LX_VERSION_STRING, h);

    void *fn = NULL;
    pthread_mutex_lock(&g_lock);
    if (g_broken || !choose_dir()) {
        g_broken = true;
        pthread_mutex_unlock(&g_lock);
        return NULL;
    }
    char obj[4200], tmp_obj[4200], src[4200], log[4200];
    snprintf(obj, sizeof obj, "%s/%016llx.so", g_dir, (unsigned long long)h);
    void *dl = NULL;
    struct stat st;
    if (lstat(obj, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid()) {
        dl = dlopen(obj, RTLD_NOW | RTLD_LOCAL);
        if (dl) g_stats.loaded++;
    }
    if (!dl) {
        long tag = (long)getpid();
        snprintf(src, sizeof src, "%s/%016llx.%ld.c", g_dir, (unsigned long long)h, tag);
        snprintf(tmp_obj, sizeof tmp_obj, "%s/%016llx.%ld.so.tmp", g_dir, (unsigned long long)h,
                 tag);
        snprintf(log, sizeof log, "%s/%016llx.%ld.log", g_dir, (unsigned long long)h, tag);
        unlink(src);
        unlink(tmp_obj);
        if (write_file(src, source, len)) {
            argv[12] = tmp_obj;
            argv[13] = src;
            run_result r = run(argv, log);
            if (r == RUN_OK && rename(tmp_obj, obj) == 0) {
                dl = dlopen(obj, RTLD_NOW | RTLD_LOCAL);
                if (!dl) say("dlopen %s: %s", obj, dlerror());
                else g_stats.compiled++;
            } else if (r == RUN_NOEXEC) {
                g_broken = true; /* no compiler: not worth retrying for every program */
            } else {
                say("compiling %s failed:", src);
                print_log(log);
            }
            unlink(tmp_obj);
            if (g_verbose < (dl ? 2 : 1)) unlink(src); /* kept to look at */
        } else {
            say("cannot write %s", src);
        }
        unlink(log);
    }
    if (dl && g_private) unlink(obj);
    if (dl) {
        fn = dlsym(dl, symbol);
        if (!fn) say("%s has no symbol %s", obj, symbol);
    }
    if (!fn) g_stats.failed++;
    pthread_mutex_unlock(&g_lock);
    return fn;
}
