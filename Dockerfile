# syntax=docker/dockerfile:1
# hubbub's container image: the static binary on distroless, as a non-root
# user, with its embedded store in the /data volume.
#
#   docker build -t hubbub --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run -p 8080:8080 -v hubbub-data:/data -e HUBBUB_PUBLISH_KEYS=... hubbub
#
# Listening on all interfaces inside the container, no client is "local":
# publishing needs HUBBUB_PUBLISH_KEYS (or JWTs) and the admin API
# HUBBUB_ADMIN_KEY (README: Security). deploy/compose.yaml runs three of
# these on Redis behind nginx.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=
ARG REVISION=
ARG COMMIT_TIME=
RUN VERSION="$VERSION" REVISION="$REVISION" COMMIT_TIME="$COMMIT_TIME" \
    deploy/build-static.sh /out/hubbub \
 && /out/hubbub version \
 && mkdir -p /out/data

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532); no shell, no package manager, no curl (hence `hubbub healthcheck`).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hubbub /usr/local/bin/hubbub
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV HUBBUB_LISTEN=:8080 \
    HUBBUB_DATA=/data
EXPOSE 8080
VOLUME /data
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/hubbub", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/hubbub"]
CMD ["serve"]
