# System integration files and the Debian package (cpack -G DEB).
#
# Included from CMakeLists.txt after install(TARGETS ...). Two kinds of install rules:
#  - relative to the prefix (unit, sysusers.d, tmpfiles.d, docs, examples): installed by every
#    `cmake --install BUILD --prefix P` too, harmless under any prefix;
#  - absolute under /etc (config file, batches directory): component "sysconf", EXCLUDE_FROM_ALL,
#    so that `cmake --install --prefix P` never writes to the real /etc. Only the package has them.
# The package is made of both components in one .deb (CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE).

set(PERSONAD_PKG_DIR "${CMAKE_BINARY_DIR}/packaging")

# ---- The packaged config: config/personad.toml, with api.credentials_file commented out, since
# under systemd the credentials come from LoadCredential= ($CREDENTIALS_DIRECTORY).
set(_personad_config_src "${CMAKE_SOURCE_DIR}/config/personad.toml")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_personad_config_src}")
file(READ "${_personad_config_src}" _personad_config)
string(REGEX REPLACE "\ncredentials_file[ \t]*=" "\n# credentials_file =" _personad_packaged
       "${_personad_config}")
if(_personad_packaged STREQUAL _personad_config)
  message(WARNING "packaging: no 'credentials_file =' line found in ${_personad_config_src}; "
                  "the packaged config is a plain copy")
endif()
string(CONCAT _personad_packaged
  "# Installed by the personad package. Under systemd the API credentials come from\n"
  "# LoadCredential= (files /etc/credstore/creatify_api_id and creatify_api_key, or the\n"
  "# systemd-creds encrypted variant): see /usr/share/doc/personad/systemd.md.\n"
  "# Check edits with: personad --check-config --config /etc/personad/personad.toml\n"
  "\n"
  "${_personad_packaged}")
file(WRITE "${PERSONAD_PKG_DIR}/personad.toml.new" "${_personad_packaged}")
file(COPY_FILE "${PERSONAD_PKG_DIR}/personad.toml.new" "${PERSONAD_PKG_DIR}/personad.toml"
     ONLY_IF_DIFFERENT)
file(MAKE_DIRECTORY "${PERSONAD_PKG_DIR}/batches.d")

# ---- Prefix-relative files
install(FILES "${CMAKE_SOURCE_DIR}/systemd/personad.service" DESTINATION lib/systemd/system)
install(FILES "${CMAKE_SOURCE_DIR}/systemd/personad.sysusers" DESTINATION lib/sysusers.d
        RENAME personad.conf)
install(FILES "${CMAKE_SOURCE_DIR}/systemd/personad.tmpfiles" DESTINATION lib/tmpfiles.d
        RENAME personad.conf)
install(FILES "${CMAKE_SOURCE_DIR}/docs/systemd.md" DESTINATION share/doc/personad)
# Examples go to the docs, never into the live batches directory: personad would create those
# avatars on its first start.
install(FILES "${_personad_config_src}" "${CMAKE_SOURCE_DIR}/config/batches.d/example.toml"
        DESTINATION share/doc/personad/examples)

# ---- /etc (package only)
install(FILES "${PERSONAD_PKG_DIR}/personad.toml" DESTINATION /etc/personad
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        COMPONENT sysconf EXCLUDE_FROM_ALL)
install(DIRECTORY "${PERSONAD_PKG_DIR}/batches.d" DESTINATION /etc/personad
        DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                              WORLD_READ WORLD_EXECUTE
        COMPONENT sysconf EXCLUDE_FROM_ALL)

# ---- Maintainer scripts: create the user and directories, tell systemd about the unit. They
# never enable or start the service (it needs credentials first) and do nothing harmful when
# systemd is absent (containers, chroots).
set(PERSONAD_DEBIAN_DIR "${PERSONAD_PKG_DIR}/debian")
file(WRITE "${PERSONAD_DEBIAN_DIR}/postinst" [=[#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers personad.conf
    elif ! getent passwd personad >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/personad --no-create-home \
            --shell /usr/sbin/nologin --comment "personad Creatify avatar daemon" personad
    fi
    if command -v systemd-tmpfiles >/dev/null 2>&1; then
        systemd-tmpfiles --create personad.conf || true
    else
        install -d -m 0750 -o personad -g personad /var/lib/personad
        install -d -m 2770 -o personad -g personad /var/lib/personad/media
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        # An upgrade restarts a running daemon on the new binary (it migrates the store itself).
        if [ -n "$2" ]; then
            systemctl try-restart personad.service || true
        fi
    fi
fi
exit 0
]=])
file(WRITE "${PERSONAD_DEBIAN_DIR}/prerm" [=[#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop personad.service || true
fi
exit 0
]=])
file(WRITE "${PERSONAD_DEBIAN_DIR}/postrm" [=[#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
    # Forget the enablement. The user, /etc/credstore files and /var/lib/personad (the job
    # database: the record of what was created and paid for) are kept on purpose.
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper purge personad.service >/dev/null || true
    fi
    rm -f /etc/systemd/system/multi-user.target.wants/personad.service
fi
exit 0
]=])
# Everything under /etc is a conffile: dpkg keeps the operator's edits on upgrade.
file(WRITE "${PERSONAD_DEBIAN_DIR}/conffiles" "/etc/personad/personad.toml\n")
file(CHMOD "${PERSONAD_DEBIAN_DIR}/postinst" "${PERSONAD_DEBIAN_DIR}/prerm"
     "${PERSONAD_DEBIAN_DIR}/postrm"
     PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
                 WORLD_EXECUTE)

# ---- CPack
set(CPACK_PACKAGE_NAME "personad")
set(CPACK_PACKAGE_VENDOR "personad")
set(CPACK_PACKAGE_CONTACT "personad maintainers <personad@example.com>")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Creatify custom avatar creation daemon")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_GENERATOR "DEB")
set(CPACK_STRIP_FILES ON)

# Both components (binaries + prefix files, and /etc) in one package.
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL Unspecified sysconf)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)

set(CPACK_DEBIAN_PACKAGE_NAME "personad")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # personad_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# The synopsis line is CPACK_PACKAGE_DESCRIPTION_SUMMARY; this is the extended description
# (CPack indents it).
string(CONCAT CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "personad creates custom avatars (personas) on the Creatify API from batch\n"
    "files and tracks each one for days until it is done, failed or expired:\n"
    "exactly once per key, across restarts. Includes personactl (the command\n"
    "line client), creatify-sim (an API simulator) and a hardened systemd unit.")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PERSONAD_DEBIAN_DIR}/postinst;${PERSONAD_DEBIAN_DIR}/prerm;${PERSONAD_DEBIAN_DIR}/postrm;${PERSONAD_DEBIAN_DIR}/conffiles")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
