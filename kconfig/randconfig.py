#!/usr/bin/python3
"""Write a random but valid .config, for `make randconfig-test`.

    randconfig.py [--seed N] [--base DEFCONFIG] [--makefile Makefile] KCONFIG OUT

Starts from DEFCONFIG (so CONFIG_BOARD and anything not user-visible stay as
the board has them), then flips every visible bool, picks a visible member of
every choice, and sets bounded ints to their default, low or high end. Symbols
that become visible only after others are set get a later pass. The same seed gives
the same file. Prints what differs from the base on one line.

With --makefile, a symbol whose `SRCS-$(CONFIG_X) += ...` sources are not
written yet stays off, so that the random configurations still link while
modules are landing."""
import argparse
import os
import random
import re

import kconfiglib


def active_range(sym):
    for low, high, cond in sym.ranges:
        if kconfiglib.expr_value(cond):
            return int(low.str_value, 0), int(high.str_value, 0)
    return None


def randomize(kc, rng, done):
    """One pass; each symbol and choice gets its random value once."""
    for sym in kc.unique_defined_syms:
        if not sym.visibility or sym.choice or sym.name == "BOARD" or sym in done:
            continue
        done.add(sym)
        if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            sym.set_value(rng.choice((0, 2)))
        elif sym.orig_type in (kconfiglib.INT, kconfiglib.HEX):
            rng_ = active_range(sym)
            if rng_ and rng.random() < 0.4:
                sym.set_value(str(rng.choice(rng_)))
    for choice in kc.unique_choices:
        members = [s for s in choice.syms if s.visibility]
        if choice.visibility and members and choice not in done:
            done.add(choice)
            rng.choice(members).set_value(2)


def unwritten_modules(makefile):
    """Symbols X of `SRCS-$(CONFIG_X) += files` lines naming a missing file."""
    syms = set()
    top = os.path.dirname(os.path.abspath(makefile))
    with open(makefile) as f:
        for line in f:
            m = re.match(r"SRCS-\$\(CONFIG_(\w+)\)\s*\+=\s*(.*)", line)
            if m and any(not os.path.exists(os.path.join(top, p)) for p in m.group(2).split()):
                syms.add(m.group(1))
    return syms


def values(kc):
    return {s.name: s.str_value for s in kc.unique_defined_syms}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--base")
    ap.add_argument("--makefile")
    ap.add_argument("kconfig")
    ap.add_argument("out")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)

    kc = kconfiglib.Kconfig(a.kconfig, warn_to_stderr=False)
    if a.base:
        kc.load_config(a.base)
    base = values(kc)
    done = set()
    off = unwritten_modules(a.makefile) if a.makefile else set()
    for name in sorted(off):
        sym = kc.syms.get(name)
        if sym is not None:
            sym.set_value(0)
            done.add(sym)
    for _ in range(3):  # symbols that became visible get their turn
        randomize(kc, rng, done)
    kc.write_config(a.out, header="# randconfig.py --seed %d\n" % seed)

    now = values(kc)
    diff = []
    for name, val in now.items():
        if val == base.get(name):
            continue
        if val in ("y", "n"):
            diff.append(("+" if val == "y" else "-") + name)
        else:
            diff.append("%s=%s" % (name, val))
    kept = " (kept off, not written: %s)" % " ".join(sorted(off)) if off else ""
    print("seed %d: %s%s" % (seed, " ".join(diff) or "(same as base)", kept))


if __name__ == "__main__":
    main()
