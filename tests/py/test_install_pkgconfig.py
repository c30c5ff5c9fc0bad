"""The installed lx works through pkg-config from a prefix chosen at install time: the build is
installed with `cmake --install BUILD --prefix P` into a temporary P (not the configure-time
prefix), a small program is compiled with `pkg-config --cflags --libs lx` (PKG_CONFIG_PATH =
P's pkgconfig folder) and run against P's shared library. lx.pc names its prefix relative to
its own location (${pcfiledir}), so its paths must resolve inside P.

Env: LX_LIB (liblx.so in the build folder, which is the folder installed), LX_TEST_TMP.
Exits 77 (skipped) when cmake, pkg-config or a C compiler is missing.
"""
import os
import shutil
import subprocess
import sys
import tempfile

PROGRAM = r"""
#include <stdio.h>
#include "lx.h"
int main(void) {
    float a[3] = {1, 2, 3}, b[3] = {10, 20, 30}, out[3];
    lx_array x = lx_array_f32(a, (const int[]){3}, 1), y = lx_array_f32(b, (const int[]){3}, 1);
    lx_array z = lx_add(lx_mul(x, y), x);
    if (lx_read(z, out, sizeof out) != LX_OK) {
        fprintf(stderr, "lx_read: %s\n", lx_error_message());
        return 1;
    }
    printf("%g %g %g\n", out[0], out[1], out[2]);
    return out[0] == 11 && out[1] == 42 && out[2] == 93 ? 0 : 1;
}
"""


def run(cmd, env=None, what=None):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print("FAIL: %s (exit %d)\n%s%s" % (what or " ".join(cmd), r.returncode, r.stdout,
                                             r.stderr))
        sys.exit(1)
    return r.stdout.strip()


def main():
    tools = {t: shutil.which(t) for t in ("cmake", "pkg-config")}
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    missing = [t for t, p in tools.items() if not p] + ([] if cc else ["cc"])
    if missing:
        print("skipped: %s not found" % ", ".join(missing))
        return 77
    lib = os.environ.get("LX_LIB")
    build = os.path.dirname(os.path.abspath(lib)) if lib else None
    if not build or not os.path.exists(os.path.join(build, "CMakeCache.txt")):
        print("FAIL: LX_LIB (%s) is not in a CMake build folder" % lib)
        return 1
    scratch = os.environ.get("LX_TEST_TMP") or tempfile.gettempdir()
    with tempfile.TemporaryDirectory(dir=scratch, prefix="lx-install-") as tmp:
        prefix = os.path.join(tmp, "some", "prefix")
        run([tools["cmake"], "--install", build, "--prefix", prefix], what="cmake --install")
        pcs = [os.path.join(d, "pkgconfig") for d, _, files in os.walk(prefix)
               if "pkgconfig" in os.listdir(d)]
        if not pcs:
            print("FAIL: no pkgconfig folder under %s" % prefix)
            return 1
        env = dict(os.environ, PKG_CONFIG_PATH=pcs[0])
        env.pop("PKG_CONFIG_LIBDIR", None)
        pc = [tools["pkg-config"]]
        libdir = run(pc + ["--variable=libdir", "lx"], env)
        incdir = run(pc + ["--variable=includedir", "lx"], env)
        ok = True
        for name, d in (("libdir", libdir), ("includedir", incdir)):
            real = os.path.realpath(d)
            if not real.startswith(os.path.realpath(prefix) + os.sep) or not os.path.isdir(real):
                print("FAIL: lx.pc's %s %s is not inside the install prefix %s" % (name, d,
                                                                                   prefix))
                ok = False
        if not ok:
            return 1
        flags = run(pc + ["--cflags", "--libs", "lx"], env).split()
        src = os.path.join(tmp, "prog.c")
        with open(src, "w") as f:
            f.write(PROGRAM)
        exe = os.path.join(tmp, "prog")
        run([cc, "-std=c11", src, "-o", exe] + flags, what="compiling with pkg-config's flags")
        run_env = dict(os.environ, LD_LIBRARY_PATH=libdir)
        out = run([exe], run_env, what="the program built against the installed lx")
        print("installed into %s; pkg-config flags %s; program printed %s" % (
            prefix, " ".join(flags), out))
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
