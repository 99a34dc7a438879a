#!/usr/bin/env bash
# Stand-in for the official Airflow image's /entrypoint: the part of its
# contract docker-compose.yml relies on.
#   _AIRFLOW_DB_MIGRATE=true       airflow db migrate before the command
#   _AIRFLOW_WWW_USER_CREATE=true  create the admin (FAB) from _AIRFLOW_WWW_USER_USERNAME/_PASSWORD
#   bash ... / python ...          run as is; airflow <cmd> or <cmd>: run `airflow <cmd>`
set -euo pipefail

# An arbitrary AIRFLOW_UID (user: "${AIRFLOW_UID}:0") still needs a home and a name.
if ! whoami >/dev/null 2>&1 && [[ -w /etc/passwd ]]; then
    echo "airflow:x:$(id -u):0:airflow:/home/airflow:/bin/bash" >> /etc/passwd
fi
export HOME=${HOME:-/home/airflow}

if [[ ${_AIRFLOW_DB_MIGRATE:-} == true ]]; then
    airflow db migrate
fi
if [[ ${_AIRFLOW_WWW_USER_CREATE:-} == true ]]; then
    user=${_AIRFLOW_WWW_USER_USERNAME:-admin}
    if airflow users list -o plain 2>/dev/null | awk '{print $2}' | grep -qx "$user"; then
        echo "entrypoint: admin user $user exists"
    else
        airflow users create --username "$user" --password "${_AIRFLOW_WWW_USER_PASSWORD:?}" \
            --firstname "${_AIRFLOW_WWW_USER_FIRSTNAME:-Airflow}" --lastname "${_AIRFLOW_WWW_USER_LASTNAME:-Admin}" \
            --email "${_AIRFLOW_WWW_USER_EMAIL:-airflowadmin@example.com}" --role Admin >/dev/null
        echo "entrypoint: created admin user $user"
    fi
fi

case ${1:-} in
    "") exec airflow --help ;;
    bash) shift; exec /bin/bash "$@" ;;
    python) shift; exec python "$@" ;;
    airflow) shift; exec airflow "$@" ;;
    *) exec airflow "$@" ;;
esac
