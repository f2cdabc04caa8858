"""The platbench image as an object of platbench (issue 18): `platbench image build` builds the Dockerfile
through the Docker SDK and records the image's identity; `platbench image push TARGET` logs in to a
platform's registry (the image login of the platform's cloud, PlatformSpec.image_login) or any registry,
pushes, and checks the digest the registry reports. Shared machinery: names no platform."""
