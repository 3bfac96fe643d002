/* cli/version: the version `berth version` prints and the client sends as its User-Agent. */
#ifndef BERTH_CLI_VERSION_H
#define BERTH_CLI_VERSION_H
#ifndef BERTH_VERSION
#define BERTH_VERSION "0.1.0"
#endif
#endif
