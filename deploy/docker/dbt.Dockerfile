# syntax=docker/dockerfile:1
# The dbt image of the hl-dbt CronJob (deploy/k8s/overlays/prod/dbt.yaml): the
# official dbt-snowflake image (pinned) plus Healthlake's dbt project in /dbt.
# Build from the repository root:
#   docker build -f deploy/docker/dbt.Dockerfile -t ghcr.io/healthlake/healthlake-dbt:0.1.0 .
# profiles.yml is the project's key-pair profile (dbt/snowflake/profiles.example.yml):
# every setting comes from the environment, the private key from a mounted file.
ARG DBT_IMAGE=ghcr.io/dbt-labs/dbt-snowflake:1.8.3
FROM ${DBT_IMAGE}
LABEL org.opencontainers.image.title="healthlake-dbt" \
      org.opencontainers.image.description="dbt project curating Healthlake's Snowflake warehouse" \
      org.opencontainers.image.source="https://github.com/healthlake/healthlake" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --chown=10001:10001 dbt/snowflake/ /dbt/
COPY --chown=10001:10001 dbt/snowflake/profiles.example.yml /dbt/profiles.yml
# Packages (if the project declares any) are fetched at build time, never at run time.
RUN if [ -f /dbt/packages.yml ]; then dbt deps --project-dir /dbt --profiles-dir /dbt; fi
USER 10001:10001
WORKDIR /dbt
ENTRYPOINT []
CMD ["dbt", "build", "--project-dir", "/dbt", "--profiles-dir", "/dbt"]
