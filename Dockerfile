# Berth's own image, for compose.yml. Python 3.13 with the locked dependencies.
FROM python:3.13-slim
ENV PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN SECRET_KEY=build python manage.py collectstatic --noinput
# Berth runs as an unprivileged user: the code is root's and read-only to it;
# only /data (BERTH_DATA_DIR, 0700) is its own. A named volume mounted there
# takes this ownership when it is first created.
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin berth \
    && mkdir -p /data && chown berth:berth /data && chmod 0700 /data
USER berth
ENV BERTH_DATA_DIR=/data
EXPOSE 8000
CMD ["python", "manage.py", "up", "--bind", "0.0.0.0:8000"]
