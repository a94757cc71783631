# seconds before the board driver reports a batch whose DMAs have not finished as stalled, per TIMEOUT_IMAGES images
# of the batch (a batch of 50,000 at 3,500 images/s takes 14 s); here, where the CLI reads them for its help, so that
# starting the CLI does not import the driver (and numpy)
DEPLOY_TIMEOUT_S = 10.0
TIMEOUT_IMAGES = 1000
