/* main.c: applet dispatch, command line, signals, and the gateway's life.
 *
 * BusyBox style: the applet is argv[0]'s basename or the first argument.
 * `tunnelbox [-c FILE]` runs the gateway; without -c it runs the board's
 * embedded loopback configuration. Signals arrive through a self-pipe so
 * their handling runs on the loop like any other event: SIGTERM/SIGINT stop
 * accepting and let flows drain, a second one stops at once, SIGHUP reloads
 * routers and data. Exit codes: 0 clean stop, 1 runtime failure, 2 bad
 * configuration or usage. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tb/app.h"
#include "tb/conf.h"
#include "tb/gateway.h"
#include "tb/log.h"
#include "tb/loop.h"
#include "tb/port.h"
#if ENABLE_LINKSOCKS
#include "tb/linksocks.h"
#endif

#ifndef TB_VERSION
#define TB_VERSION "0.0.0"
#endif

#define DRAIN_MS_DEFAULT 10000

/* The default board configuration: a loopback-only gateway to `direct`. */
static const char default_config[] =
#if ENABLE_GW_MIXED
	"[[listener]]\nname = \"local\"\nproto = \"mixed\"\n"
#else
	"[[listener]]\nname = \"local\"\nproto = \"socks5\"\n"
#endif
	"endpoint = \"127.0.0.1:1080\"\nrouter = \"main\"\n\n"
	"[[connector]]\nname = \"direct\"\nproto = \"direct\"\n\n"
	"[[router]]\nname = \"main\"\ndefault = \"direct\"\n";

/* Process state: the only globals, as STYLE.md allows for main.c. */
static int sig_pipe[2] = {-1, -1};

struct app {
	tb_loop_t *loop;
	tb_gw_t *gw;
	const char *config_path;
	uint32_t drain_ms;
	bool stopping;
};

static void on_signal(int sig)
{
	int saved = errno;
	uint8_t b = (uint8_t)sig;

	if (write(sig_pipe[1], &b, 1) < 0) {
		/* the pipe is full: a signal is already pending */
	}
	errno = saved;
}

static int load_config(const char *path, tb_conf_t **out)
{
	tb_conf_err_t err;
	char buf[512];
	int rc;

	memset(&err, 0, sizeof(err));
	if (path)
		rc = tb_conf_load(path, out, &err);
	else
		rc = tb_conf_parse(default_config, sizeof(default_config) - 1, "<embedded>", out, &err);
	if (rc < 0) {
		fprintf(stderr, "%s\n", tb_conf_err_str(NULL, path ? path : "<embedded>", &err, buf, sizeof(buf)));
		return rc;
	}
	return 0;
}

static void drained(void *arg)
{
	struct app *app = arg;

	tb_loop_stop(app->loop);
}

static void reload(struct app *app)
{
	tb_conf_t *conf;
	tb_conf_err_t err;
	char buf[512];

	if (!app->config_path) {
		tb_info("SIGHUP: no -c file, nothing to reload");
		return;
	}
	if (load_config(app->config_path, &conf) < 0) {
		tb_err("reload failed; keeping the running configuration");
		return;
	}
	if (tb_gw_reload(app->gw, conf, &err) < 0)
		tb_err("reload failed, keeping the running configuration: %s",
		       tb_conf_err_str(conf, app->config_path, &err, buf, sizeof(buf)));
	tb_conf_free(conf);
}

static void signal_event(tb_loop_t *loop, int fd, unsigned ev, void *arg)
{
	struct app *app = arg;
	uint8_t sigs[16];
	ssize_t n = read(fd, sigs, sizeof(sigs));

	for (ssize_t i = 0; i < n; i++) {
		if (sigs[i] == SIGHUP) {
			reload(app);
			continue;
		}
		if (app->stopping) {
			tb_info("second stop signal: exiting now");
			tb_loop_stop(loop);
			return;
		}
		app->stopping = true;
		tb_gw_drain(app->gw, app->drain_ms, drained, app);
	}
}

static int setup_signals(struct app *app)
{
	struct sigaction sa;

	if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return tb_loop_add_fd(app->loop, sig_pipe[0], TB_EV_READ, signal_event, app);
}

static int serve(struct app *app)
{
	int rc;

	if (setup_signals(app) < 0 || tb_gw_start(app->gw) < 0)
		return 1;
	rc = tb_loop_run(app->loop) < 0 ? 1 : tb_gw_exit_code(app->gw);
	tb_info("stopped");
	return rc;
}

/* A worker process: its own loop and gateway, the parent's signals reset. */
static int worker_main(struct app *app, const tb_conf_t *conf)
{
	tb_conf_err_t err;
	int rc;

	app->loop = tb_loop_new();
	if (!app->loop || tb_gw_new(app->loop, conf, &app->gw, &err) < 0)
		return 1;
	rc = serve(app);
	tb_gw_free(app->gw);
	tb_loop_free(app->loop);
	return rc;
}

static pid_t spawn_worker(struct app *app, const tb_conf_t *conf, const sigset_t *old)
{
	pid_t pid = fork();

	if (pid == 0) {
		sigprocmask(SIG_SETMASK, old, NULL);
		_exit(worker_main(app, conf));
	}
	if (pid < 0)
		tb_err("fork: %s", strerror(errno));
	return pid;
}

/* Starts n workers and forwards signals to them. A worker that dies while
 * we are not stopping is restarted, at most RESPAWN_MAX times a minute. */
#define RESPAWN_MAX 10
static int supervise(struct app *app, const tb_conf_t *conf, unsigned n)
{
	sigset_t set, old;
	pid_t pids[64] = {0};
	unsigned alive = 0, respawns = 0;
	uint64_t window = 0;
	bool stopping = false;
	int rc = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	signal(SIGPIPE, SIG_IGN);
	for (unsigned i = 0; i < n; i++)
		if ((pids[i] = spawn_worker(app, conf, &old)) > 0)
			alive++;
	tb_info("supervisor %d: %u workers", (int)getpid(), alive);
	while (alive > 0) {
		int sig = sigwaitinfo(&set, NULL), st;
		pid_t pid;

		if (sig == SIGHUP || sig == SIGINT || sig == SIGTERM) {
			stopping |= sig != SIGHUP;
			for (unsigned i = 0; i < n; i++)
				if (pids[i] > 0)
					kill(pids[i], sig);
			continue;
		}
		while (sig == SIGCHLD && (pid = waitpid(-1, &st, WNOHANG)) > 0) {
			unsigned i;
			for (i = 0; i < n && pids[i] != pid; i++)
				;
			if (i == n)
				continue;
			pids[i] = 0;
			alive--;
			bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
			if (stopping || clean) {
				if (!clean)
					rc = 1; /* a worker failed to stop cleanly */
				continue;
			}
			uint64_t now = tb_port_now_ms();
			if (now - window > 60000) {
				window = now;
				respawns = 0;
			}
			if (++respawns > RESPAWN_MAX) {
				tb_err("workers keep dying; stopping");
				stopping = true;
				rc = 1;
				for (unsigned j = 0; j < n; j++)
					if (pids[j] > 0)
						kill(pids[j], SIGTERM);
				continue;
			}
			tb_warn("worker %d died (status %d); restarting it", (int)pid, st);
			if ((pids[i] = spawn_worker(app, conf, &old)) > 0)
				alive++;
		}
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static void print_version(void)
{
	static const struct {
		bool on;
		const char *name;
	} mods[] = {
		{ENABLE_GW_SOCKS5, "socks5"},   {ENABLE_GW_HTTP, "http"},   {ENABLE_GW_MIXED, "mixed"},
		{ENABLE_CONN_DIRECT, "direct"}, {ENABLE_CONN_BLOCK, "block"}, {ENABLE_ROUTER_REGEX, "regex"},
		{ENABLE_DNS_CARES, "c-ares"},   {ENABLE_TUN, "tun"},       {ENABLE_LINKSOCKS, "linksocks"}, {ENABLE_CONN_UPSTREAM, "upstream"},
		{ENABLE_TUN2SOCKS, "tun2socks"},
	};

	printf("tunnelbox %s (board %s, %s)\nmodules:", TB_VERSION, CONFIG_BOARD, tb_poll_name());
	for (size_t i = 0; i < TB_ARRAY_SIZE(mods); i++)
		if (mods[i].on)
			printf(" %s", mods[i].name);
	printf("\n");
}

/* Builds the gateway from conf (taken) and runs it: --check, one loop, or
 * a supervisor of workers. Exit codes as main's. */
static int run_conf(struct app *app, tb_conf_t *conf, bool check)
{
	tb_conf_err_t err;
	char buf[512];
	int rc;

	app->loop = tb_loop_new();
	if (!app->loop) {
		tb_conf_free(conf);
		return 1;
	}
	rc = tb_gw_new(app->loop, conf, &app->gw, &err);
	if (rc < 0) {
		fprintf(stderr, "%s\n", tb_conf_err_str(conf, conf->file, &err, buf, sizeof(buf)));
		tb_conf_free(conf);
		tb_loop_free(app->loop);
		return 2;
	}
	if (check) {
		printf("%s: configuration ok\n", app->config_path ? app->config_path : "<embedded>");
		rc = 0;
	} else if (tb_gw_workers(app->gw) > 1) {
		unsigned n = tb_gw_workers(app->gw);
		/* The parent only supervises; each worker builds its own loop
		 * and gateway from the same (already validated) configuration. */
		tb_gw_free(app->gw);
		tb_loop_free(app->loop);
		rc = supervise(app, conf, n);
		tb_conf_free(conf);
		return rc;
	} else {
		rc = serve(app);
	}
	tb_conf_free(conf);
	tb_gw_free(app->gw);
	tb_loop_free(app->loop);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tunnelbox [-c FILE] [--check] [-l LEVEL] [--syslog] [--drain-timeout MS]\n"
		   "       tunnelbox --version\n"
		   "  -c, --config FILE    TOML configuration (default: the embedded loopback gateway)\n"
		   "      --check          validate the configuration and exit (2 if it is bad)\n"
		   "  -l, --log-level L    error, warn, info (default), debug\n"
		   "  -v, --verbose        same as --log-level debug\n"
		   "      --syslog         log to syslog instead of stderr\n"
		   "      --drain-timeout MS  how long SIGTERM lets flows finish (default %d)\n",
		DRAIN_MS_DEFAULT);
}

static int gateway_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'C'},
		{"log-level", required_argument, NULL, 'l'}, {"verbose", no_argument, NULL, 'v'},
		{"syslog", no_argument, NULL, 'S'},       {"drain-timeout", required_argument, NULL, 'D'},
		{"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct app app = {.drain_ms = DRAIN_MS_DEFAULT};
	int level = CONFIG_LOG_LEVEL_DEFAULT, opt;
	bool check = false, use_syslog = false;
	tb_conf_t *conf;

	while ((opt = getopt_long(argc, argv, "c:l:vhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			app.config_path = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'l':
			if ((level = tb_log_level_parse(optarg)) < 0) {
				fprintf(stderr, "unknown log level '%s'\n", optarg);
				return 2;
			}
			break;
		case 'v':
			level = TB_LOG_DEBUG;
			break;
		case 'S':
			use_syslog = ENABLE_LOG_SYSLOG;
			break;
		case 'D':
			app.drain_ms = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'V':
			print_version();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	tb_log_init(level, use_syslog, "tunnelbox");
	if (load_config(app.config_path, &conf) < 0)
		return 2;
	return run_conf(&app, conf, check);
}

int tb_main_run_text(const char *name, const char *toml, int log_level)
{
	struct app app = {.drain_ms = DRAIN_MS_DEFAULT};
	tb_conf_t *conf;
	tb_conf_err_t err;
	char buf[512];

	tb_log_init(log_level, false, name);
	memset(&err, 0, sizeof(err));
	if (tb_conf_parse(toml, strlen(toml), name, &conf, &err) < 0) {
		fprintf(stderr, "%s\n", tb_conf_err_str(NULL, name, &err, buf, sizeof(buf)));
		return 2;
	}
	return run_conf(&app, conf, false);
}

struct applet {
	const char *name;
	int (*main)(int argc, char **argv);
};

static const struct applet applets[] = {
	{"tunnelbox", gateway_main},
	{"gateway", gateway_main},
#if ENABLE_LINKSOCKS
	{"linksocks", tb_linksocks_main},
#endif
};

static const struct applet *find_applet(const char *name)
{
	for (size_t i = 0; i < TB_ARRAY_SIZE(applets); i++)
		if (strcmp(applets[i].name, name) == 0)
			return &applets[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');
	const struct applet *a;

	base = base ? base + 1 : argv[0];
	a = find_applet(base);
	if (a && a->main != gateway_main)
		return a->main(argc, argv);
	/* `tunnelbox APPLET ...`: the first argument names the applet. */
	if (argc > 1 && (a = find_applet(argv[1])) != NULL)
		return a->main(argc - 1, argv + 1);
	return gateway_main(argc, argv);
}
