# Builds and runs tests/install_consumer/ the way an outside project would. Run by ctest as
#   cmake -DMODE=package|subdirectory|fetchcontent -DSOURCE_DIR=<recurrent_depth source>
#         -DBUILD_DIR=<recurrent_depth build> -DWORK_DIR=<scratch> -DGENERATOR=<generator>
#         [-DMAKE_PROGRAM=..] [-DCXX_COMPILER=..] [-DCONFIG=<config>] [-DPREFIX_PATH=a|b]
#         -P RunConsumerTest.cmake
# package:       cmake --install BUILD_DIR --prefix WORK_DIR/prefix, then the consumer finds it
#                through -DCMAKE_PREFIX_PATH=WORK_DIR/prefix (find_package CONFIG REQUIRED).
# subdirectory / fetchcontent: the consumer pulls in SOURCE_DIR directly.
cmake_minimum_required(VERSION 3.22)

foreach(var MODE SOURCE_DIR BUILD_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "RunConsumerTest.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT CONFIG)
  set(CONFIG Release)
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc})")
  endif()
endfunction()

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# PREFIX_PATH carries the outer build's CMAKE_PREFIX_PATH with '|' for ';'.
string(REPLACE "|" ";" prefix_path "${PREFIX_PATH}")
if(MODE STREQUAL "package")
  run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" --config "${CONFIG}")
  if(NOT EXISTS "${prefix}/include/recurrent_depth/core/dtype.hpp")
    message(FATAL_ERROR "headers were not installed under ${prefix}/include")
  endif()
  list(PREPEND prefix_path "${prefix}")
endif()
string(REPLACE ";" "\\;" prefix_path "${prefix_path}")

set(configure_args
  -S "${SOURCE_DIR}/tests/install_consumer" -B "${consumer_build}" -G "${GENERATOR}"
  "-DCMAKE_BUILD_TYPE=${CONFIG}"
  "-DCMAKE_PREFIX_PATH=${prefix_path}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  "-DRECURRENT_DEPTH_CONSUMER_MODE=${MODE}"
  "-DRECURRENT_DEPTH_SOURCE_DIR=${SOURCE_DIR}")
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()

run("${CMAKE_COMMAND}" ${configure_args})

if(MODE STREQUAL "package")
  # The package must come from the staging prefix, not from some other installed copy.
  file(STRINGS "${consumer_build}/CMakeCache.txt" found_dir REGEX "^recurrent_depth_DIR:")
  string(REGEX REPLACE "^[^=]*=" "" found_dir "${found_dir}")
  file(REAL_PATH "${found_dir}" found_dir)
  file(REAL_PATH "${prefix}" real_prefix)
  string(FIND "${found_dir}" "${real_prefix}/" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "recurrent_depth was found in '${found_dir}', not under '${real_prefix}'")
  endif()
endif()

run("${CMAKE_COMMAND}" --build "${consumer_build}" --config "${CONFIG}")
run("${CMAKE_CTEST_COMMAND}" --test-dir "${consumer_build}" -C "${CONFIG}" --output-on-failure)
