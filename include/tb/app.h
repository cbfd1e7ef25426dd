/* app.h: what main.c offers the applets (the drop-in command lines).
 *
 * An applet such as `tunnelbox linksocks` translates its reference's flags
 * into a TOML configuration text and runs it here, on the same gateway,
 * signals and exit codes as `tunnelbox -c FILE`. */
#ifndef TB_APP_H
#define TB_APP_H

/* Parses toml (named `name` in error messages and the syslog ident), then
 * runs the gateway until a stop signal or a fatal error. Returns the exit
 * code: 0 clean stop, 1 runtime failure, 2 bad configuration. */
int tb_main_run_text(const char *name, const char *toml, int log_level);

#endif
