# bootbot in a container: the same set-up script as a bare machine, so one list of packages.
# QEMU runs under TCG unless the container is given a working /dev/kvm. Builds and boots run
# under bubblewrap, which needs to make namespaces: run with --cap-add SYS_ADMIN and
# --security-opt seccomp=unconfined (or --privileged); otherwise every check is a lab error.
FROM debian:12
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        python3 python3-venv ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/bootbot
COPY . .
RUN scripts/setup && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/opt/bootbot/.venv/bin/bootbot"]
