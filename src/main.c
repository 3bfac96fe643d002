/* main: dispatch `berth VERB ...` to the server or to a CLI verb (src/cli). */
#include "cli/cli.h"
int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
