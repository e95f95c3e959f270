"""Digits TFX pipeline: MNIST-style digit images to a blessed model served over the TF Serving APIs.

Dependency ranges are declared here; requirements/requirements.lock pins the exact tested set
(install with uv: plain pip refuses tfx 1.16 on Python 3.11 because of its declared Requires-Python).
"""

from setuptools import find_packages, setup

setup(
    name="digits-tfx",
    version="0.1.0",
    description="TFX pipeline for handwritten digit recognition, served with TF Serving APIs",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    packages=find_packages(
        include=[
            "cli",
            "cli.*",
            "pipeline",
            "pipeline.*",
            "components",
            "components.*",
            "models",
            "models.*",
            "serving",
            "serving.*",
            "reports",
            "reports.*",
            "monitoring",
            "monitoring.*",
        ]
    ),
    package_data={"serving": ["static/*.html", "deploy/*.yml", "deploy/*.yaml", "deploy/*.txt", "deploy/*.config"]},
    install_requires=[
        "tfx[kfp]>=1.16,<1.17",
        "tensorflow>=2.16,<2.17",
        "tf-keras>=2.16,<2.17",
        "tensorflow-transform>=1.16,<1.17",
        "tensorflow-model-analysis>=0.47,<0.48",
        "tensorflow-data-validation>=1.16,<1.17",
        "tensorflow-serving-api>=2.16,<2.17",
        "apache-beam>=2.60",
        "protobuf>=4.25.2,<5",
        "dill",
        "pyyaml",
        "numpy>=1.26,<2",
        "pillow>=10",
        "matplotlib>=3.8",
        "fastapi>=0.110",
        "uvicorn[standard]>=0.30",
        "orjson>=3.9",
        "prometheus-client>=0.20",
        "swagger-ui-bundle>=1.1",
        "psutil>=5.9",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "hypothesis>=6",
            "schemathesis>=4",
            "nbclient>=0.10",
            "ipykernel>=6",
            "playwright>=1.40",
            "ruff",
            "mypy",
            "mkdocs>=1.6",
            "py-spy>=0.4",
        ]
    },
    entry_points={"console_scripts": ["digits=cli.main:main"]},
)
