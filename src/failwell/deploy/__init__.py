"""Deployment files generated from a failwell config: Kubernetes manifests with KEDA."""
