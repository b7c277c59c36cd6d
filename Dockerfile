# bootbot in a container, as workers are deployed: the same set-up script as a bare machine, so one
# list of packages. scripts/image builds it with podman from a debootstrapped Debian 12.
#
# Run with --cap-add SYS_ADMIN,NET_ADMIN and --security-opt seccomp=unconfined (or --privileged):
# builds and boots run under bubblewrap, which makes namespaces and brings up their loopback;
# without NET_ADMIN every boot is a lab error ("bwrap: loopback: Failed RTM_NEWADDR"). QEMU runs
# under TCG unless the container is given a working /dev/kvm.
FROM debian:12
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        python3 python3-venv ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/bootbot
# The set-up's inputs first, so that a change to the code rebuilds only the layers after them,
# not the packages. The package's first file lets the editable install find it; the rest comes below.
COPY scripts/setup scripts/apt-packages scripts/l0-root scripts/
COPY pyproject.toml ./
COPY bot/__init__.py bot/
# A host behind a TLS-inspecting proxy lends its CA bundle as the secret "ca" (scripts/image does).
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    scripts/setup && rm -rf /var/lib/apt/lists/*
COPY . .
RUN .venv/bin/python -m compileall -q bot
ENTRYPOINT ["/opt/bootbot/.venv/bin/bootbot"]
