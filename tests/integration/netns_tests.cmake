# A deployed run across four network namespaces ("hosts") with faults: random loss from one
# worker (nftables), a bandwidth limit on another (tc tbf), the third behind delay_proxy
# (tests/tools/delay_proxy.cc); its model.ftw must equal `fedtrain simulate`'s byte for byte.
# Included from tests/integration/CMakeLists.txt. Needs root, iproute2 and nftables
# (scripts/install_deps.sh); without root or those tools the script exits 77 (skipped).
add_test(NAME netns_multi_host
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/netns_test.sh $<TARGET_FILE:fedtrain>
          $<TARGET_FILE:delay_proxy> ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}/netns_test)
set_tests_properties(netns_multi_host PROPERTIES LABELS integration TIMEOUT 300
  SKIP_RETURN_CODE 77)
