# Debian 12's xsimd 8.1 package was built with ENABLE_XTL_COMPLEX, so its exported `xsimd` target
# links to `xtl`, but its xsimdConfig.cmake never looks for xtl (xtensor-stack/xsimd#869, fixed
# upstream by #875 after 8.1). With no `xtl` target the name turns into `-lxtl` and linking fails.
# The headers only include xtl under XSIMD_ENABLE_XTL_COMPLEX, which the target does not define,
# so the dangling name is dropped. Used by CMakeLists.txt and the installed recurrent_depthConfig.
if(TARGET xsimd AND NOT TARGET xtl)
  get_target_property(_recurrent_depth_xsimd_libs xsimd INTERFACE_LINK_LIBRARIES)
  if(_recurrent_depth_xsimd_libs AND "xtl" IN_LIST _recurrent_depth_xsimd_libs)
    list(REMOVE_ITEM _recurrent_depth_xsimd_libs xtl)
    set_property(TARGET xsimd PROPERTY INTERFACE_LINK_LIBRARIES "${_recurrent_depth_xsimd_libs}")
  endif()
  unset(_recurrent_depth_xsimd_libs)
endif()
