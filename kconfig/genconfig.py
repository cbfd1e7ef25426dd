#!/usr/bin/python3
"""Write config.h and auto.conf from .config.

Kconfiglib's own genconfig only defines enabled bools; the code wants an
always-present ENABLE_X 0/1 for every bool (BusyBox style) so that
`if (ENABLE_X)` compiles everywhere and dead branches fold away."""
import sys

import kconfiglib


def main():
    kconfig, dotconfig, header, autoconf = sys.argv[1:5]
    kc = kconfiglib.Kconfig(kconfig, warn_to_stderr=False)
    kc.load_config(dotconfig)
    h = ["/* generated from %s by kconfig/genconfig.py: do not edit */" % dotconfig,
         "#ifndef TB_GENERATED_CONFIG_H", "#define TB_GENERATED_CONFIG_H", ""]
    mk = ["# generated from %s: do not edit" % dotconfig]
    for sym in kc.unique_defined_syms:
        val = sym.str_value
        if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            on = val in ("y", "m")
            if on:
                h.append("#define CONFIG_%s 1" % sym.name)
                mk.append("CONFIG_%s=y" % sym.name)
            h.append("#define ENABLE_%s %d" % (sym.name, 1 if on else 0))
        elif sym.orig_type == kconfiglib.STRING:
            esc = val.replace("\\", "\\\\").replace('"', '\\"')
            h.append('#define CONFIG_%s "%s"' % (sym.name, esc))
            mk.append("CONFIG_%s=%s" % (sym.name, val))
        elif sym.orig_type in (kconfiglib.INT, kconfiglib.HEX) and val:
            h.append("#define CONFIG_%s %s" % (sym.name, val))
            mk.append("CONFIG_%s=%s" % (sym.name, val))
    h += ["", "#endif", ""]
    for path, lines in ((header, h), (autoconf, mk)):
        text = "\n".join(lines) + ("\n" if path == autoconf else "")
        try:
            with open(path) as f:
                if f.read() == text:
                    continue  # keep the timestamp: no needless rebuild
        except OSError:
            pass
        with open(path, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
