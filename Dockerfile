# radpath-base: radpath's source and its core install, the base of every radpath image.
# It sits at the repository root because Kaapana builds each image with the Dockerfile's own
# folder as the context (build-scripts/build_helper/container/container.py) and radpath's
# source is this whole folder; LABEL REGISTRY="local-only" makes it a base the platform
# build builds first and never pushes (as Kaapana's base-python-cpu).
FROM local-only/base-python-cpu:latest

LABEL REGISTRY="local-only"
LABEL IMAGE="radpath-base"
LABEL VERSION="latest"
LABEL BUILD_IGNORE="False"

WORKDIR /opt/radpath
COPY setup.py setup.cfg pyproject.toml constraints.txt README.md ./
COPY anatomy ./anatomy
COPY radpath ./radpath
COPY operators ./operators
COPY processing-containers/pip-install-radpath /usr/local/bin/pip-install-radpath
# Into the base's venv (/opt/venv), keeping the base's torch; the stage images add extras.
RUN pip-install-radpath
