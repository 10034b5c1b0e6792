# Tests of the deploy/ launchers and manifests (included from tests/integration/CMakeLists.txt).
# Docker and kubectl are not on the project's machines: the Dockerfile and the Kubernetes
# manifests are checked statically (with negative tests showing the checks can fail); the
# Slurm batch script runs for real on a single-node Slurm started by the test itself.
# Needs /usr/bin/python3 with python3-yaml and python3-kubernetes, slurm-wlm, munge, openssl
# and openmpi-bin (scripts/install_deps.sh).

# deploy/Dockerfile, statically: stages, COPY sources, the built binary's path (from the
# target itself, so moving the binary in CMake without updating the Dockerfile fails),
# ENTRYPOINT, runtime packages of the real binary, USER vs the manifests' runAsUser.
add_test(NAME deploy_dockerfile
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/deploy/check_dockerfile.py
          --binary $<TARGET_FILE:fedtrain> --binary-dir ${CMAKE_BINARY_DIR}
          --source-dir ${PROJECT_SOURCE_DIR})
# ... and broken copies of it are refused.
add_test(NAME deploy_dockerfile_broken
  COMMAND bash ${PROJECT_SOURCE_DIR}/deploy/test_check_dockerfile.sh $<TARGET_FILE:fedtrain>
          ${CMAKE_BINARY_DIR} ${CMAKE_BINARY_DIR}/deploy_dockerfile_broken)

# deploy/k8s: every document against python3-kubernetes' API models, references between
# them, fedtrain's command lines.
add_test(NAME deploy_k8s_validate
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/deploy/k8s/validate.py ${PROJECT_SOURCE_DIR}/deploy/k8s)
# ... 20 broken copies (typo'd field, wrong type, missing required field, dangling refs, ...)
# each fail with the error naming file, document and field.
add_test(NAME deploy_k8s_broken
  COMMAND bash ${PROJECT_SOURCE_DIR}/deploy/k8s/test_broken.sh ${CMAKE_BINARY_DIR}/deploy_k8s_broken)
# The experiment config in the ConfigMap is one fedtrain runs (1 round).
add_test(NAME deploy_k8s_config
  COMMAND sh -c "rm -rf \"$1\" && mkdir -p \"$1\" && /usr/bin/python3 \"$2/deploy/k8s/validate.py\" --print-config-key fedtrain-config experiment.json \"$2/deploy/k8s\" > \"$1/experiment.json\" && \"$3\" simulate --config \"$1/experiment.json\" --set rounds=1 --out \"$1/runs\" && test -f \"$1/runs/synthetic_1_1_logreg/model.ftw\""
          k8s_config ${CMAKE_BINARY_DIR}/deploy_k8s_config ${PROJECT_SOURCE_DIR}
          ${CMAKE_BINARY_DIR}/cli/fedtrain)

# deploy/mpi/hostfile.example parses, and the -np 5 its comments use fits it with rank 0 (the
# server) on the first host (mpirun maps the ranks without launching anything).
add_test(NAME deploy_mpi_hostfile
  COMMAND sh -c "out=$(mpirun --allow-run-as-root --hostfile \"$1/deploy/mpi/hostfile.example\" -np 5 --do-not-launch --display-map true 2>&1); echo \"$out\" | grep -q 'Total slots allocated 5' && echo \"$out\" | grep -A1 'Data for node: node01' | grep -q 'Process rank: 0' || { echo \"$out\"; exit 1; }"
          mpi_hostfile ${PROJECT_SOURCE_DIR})

# deploy/slurm/fedtrain.sbatch on a throwaway single-node Slurm (deploy/slurm/local_slurm.sh):
# 1 server + 2 workers plain and over mutual TLS, a job without room for a worker fails, bad
# input refused. About 15 s; needs root (skipped otherwise).
add_test(NAME deploy_slurm
  COMMAND bash ${PROJECT_SOURCE_DIR}/deploy/slurm/test_local.sh ${CMAKE_BINARY_DIR}/cli/fedtrain
          ${CMAKE_BINARY_DIR}/deploy_slurm_test)
set_tests_properties(deploy_slurm PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)

set_tests_properties(deploy_dockerfile deploy_dockerfile_broken deploy_k8s_validate
  deploy_k8s_broken deploy_k8s_config deploy_mpi_hostfile deploy_slurm
  PROPERTIES LABELS integration)
