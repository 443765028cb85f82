"""The HTML pages headstart writes (the audit's report, evaluate's page) and the thumbnails they embed."""
