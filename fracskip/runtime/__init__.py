# seconds before the board driver reports a batch whose DMAs have not finished as stalled; here, where the CLI reads
# it for its help, so that starting the CLI does not import the driver (and numpy)
DEPLOY_TIMEOUT_S = 10.0
