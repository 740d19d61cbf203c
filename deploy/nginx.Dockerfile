# nginx from Debian's package (the same nginx that tests/test_scaleout.py
# runs) with deploy/nginx.conf. Built by deploy/compose.yaml.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
 && mkdir -p /var/cache/nginx/image-factory \
 && chown www-data:www-data /var/cache/nginx/image-factory
COPY nginx.conf /etc/nginx/nginx.conf
EXPOSE 8080
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=5s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
CMD ["nginx", "-g", "daemon off;"]
