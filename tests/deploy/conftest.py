# tests/deploy: checks of what deploys mmserve (the container image, the Helm chart under
# deploy/helm, the KServe manifests). Each test file keeps its own fixtures.
