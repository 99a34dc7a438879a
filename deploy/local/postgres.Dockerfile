# Stand-in for the official postgres image: Debian's PostgreSQL with the same
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB start-up contract, data in
# /var/lib/postgresql/data and pg_isready on PATH.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
# No cluster at install time: the entrypoint creates one in $PGDATA.
RUN mkdir -p /etc/postgresql-common \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/lib/postgresql/*/bin/* /usr/local/bin/
RUN mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
