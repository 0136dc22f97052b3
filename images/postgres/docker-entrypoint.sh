#!/bin/bash
# Entrypoint of berth/postgres (images/postgres). It follows the official postgres
# image's contract: POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
# POSTGRES_USER (default postgres), POSTGRES_DB (default $POSTGRES_USER), PGDATA
# (default /var/lib/postgresql/data), POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD
# (default scram-sha-256), and /docker-entrypoint-initdb.d/*.sql|*.sql.gz|*.sh run once.
# initdb runs only when $PGDATA/PG_VERSION is missing; the server runs as postgres;
# SIGTERM and SIGINT mean a fast shutdown, SIGQUIT an immediate one.
set -Eeo pipefail

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

# support "docker run image -c foo=bar"
if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" != 'postgres' ]; then exec "$@"; fi

if [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA" 2>/dev/null || :
	chmod 3777 /var/run/postgresql
	# drop privileges (setpriv is in util-linux, no gosu needed); exec keeps PID 1
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
		echo >&2 'error: database is uninitialized and superuser password is not specified.'
		echo >&2 '       set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust, not recommended)'
		exit 1
	fi
	echo "initdb: initializing $PGDATA"
	# --auth-local/--auth-host trust only for in-container socket/loopback, like the official image
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=trust $POSTGRES_INITDB_ARGS
	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
	printf "\nlisten_addresses = '*'\npassword_encryption = 'scram-sha-256'\n" >> "$PGDATA/postgresql.conf"

	# temporary server: unix socket only, so nothing outside sees a half-initialised db
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
	export PGUSER="$POSTGRES_USER" PGHOST=/var/run/postgresql
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		psql -v ON_ERROR_STOP=1 --dbname postgres --set db="$POSTGRES_DB" <<-'SQL'
			CREATE DATABASE :"db" ;
		SQL
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh)     echo "running $f"; . "$f" ;;
			*.sql)    echo "running $f"; psql -v ON_ERROR_STOP=1 --dbname "$POSTGRES_DB" -f "$f" ;;
			*.sql.gz) echo "running $f"; gunzip -c "$f" | psql -v ON_ERROR_STOP=1 --dbname "$POSTGRES_DB" ;;
			*) ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	unset PGUSER PGHOST
	echo 'init complete; starting server'
fi

# pg_cron works only preloaded, so the image that ships it loads it itself: Berth's command line
# then suits any postgres image, and an image without pg_cron (an older build, the public one) is
# never told to load a library it lacks, which would stop the server. Its jobs run in background
# workers (no login: the project's pg_hba wants a password) in POSTGRES_DB, as the role that
# scheduled them; two at a time at most, leaving worker slots to parallel queries. Flags given
# after these (Berth's settings) win.
if [ -e "/usr/lib/postgresql/$PG_MAJOR/lib/pg_cron.so" ]; then
	set -- "$1" -c shared_preload_libraries=pg_cron -c "cron.database_name=$POSTGRES_DB" \
		-c cron.use_background_workers=on -c cron.max_running_jobs=2 "${@:2}"
fi

# Postgres treats SIGTERM as "smart" shutdown (waits for all clients to disconnect, e.g. an API's
# connection pool -> docker stop would hit its 10s timeout and SIGKILL). Translate to fast shutdown.
"$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null' TERM INT
trap 'kill -QUIT "$pid" 2>/dev/null' QUIT
set +e
wait "$pid"; rc=$?
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done
exit "$rc"
