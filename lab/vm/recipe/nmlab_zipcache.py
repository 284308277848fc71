"""netmedic VM lab (guest side): keep the bytecode of Python sources imported from zip files.

Ansible runs a module as an AnsiballZ zip (the module and its module_utils as .py
sources, no .pyc) through zipimport, which compiles every source on every run,
and Python 3.11's zipimport compiles each one twice (find_spec() asks
get_filename(), which compiles). Under TCG that compiling is most of a module run.
This keeps the compiled code in CACHE_DIR, keyed on the source bytes, the
interpreter's bytecode magic and the optimize level, and gives each cached code
object the current file name (as importlib does for .pyc files): the module runs
the same code as when compiled, only sooner.

Installed into the image by customize.sh (dist-packages + nmlab_zipcache.pth,
loaded at interpreter start); the image build fills the cache with the
controller's ansible module_utils. NMLAB_ZIPCACHE=0 turns it off for a process.
"""

import os
import sys
import zipimport

CACHE_DIR = '/var/cache/nmlab-pyc'


def _cached_code(source, path):
    """The code object of source (bytes) named path: from the cache, else compiled and stored."""
    # Imported here: only a process that imports from a zip pays for them.
    import _imp  # pylint: disable=import-outside-toplevel
    import hashlib  # pylint: disable=import-outside-toplevel
    import marshal  # pylint: disable=import-outside-toplevel
    from importlib.util import MAGIC_NUMBER  # pylint: disable=import-outside-toplevel

    # zipimport compiles with universal newlines; so do we.
    source = source.replace(b'\r\n', b'\n').replace(b'\r', b'\n')
    key = hashlib.sha256(MAGIC_NUMBER + bytes([sys.flags.optimize]) + source).hexdigest()
    cached = os.path.join(CACHE_DIR, key)
    try:
        with open(cached, 'rb') as fh:
            code = marshal.loads(fh.read())
        _imp._fix_co_filename(code, path)  # pylint: disable=protected-access
        return code
    except (OSError, EOFError, ValueError, TypeError):
        pass
    code = compile(source, path, 'exec', dont_inherit=True)
    try:
        os.makedirs(CACHE_DIR, exist_ok=True)
        tmp = f'{cached}.{os.getpid()}.tmp'
        with open(tmp, 'wb') as fh:
            fh.write(marshal.dumps(code))
        os.replace(tmp, cached)
    except OSError:
        pass
    return code


class CachingZipImporter(zipimport.zipimporter):
    """zipimporter whose get_code() reuses bytecode compiled earlier from the same source."""

    def _source_path(self, fullname):
        leaf = fullname.rpartition('.')[2]
        if self.is_package(fullname):
            return os.path.join(self.archive, self.prefix, leaf, '__init__.py')
        return os.path.join(self.archive, self.prefix, leaf + '.py')

    def get_filename(self, fullname):
        # zipimport compiles the module to answer this (find_spec() asks it for every module).
        try:
            path = self._source_path(fullname)
            self.get_data(path)
            return path
        except (OSError, ImportError):
            return super().get_filename(fullname)

    def get_code(self, fullname):
        try:
            path = self._source_path(fullname)
            source = self.get_data(path)
        except (OSError, ImportError):
            return super().get_code(fullname)
        return _cached_code(source, path)


def warm(root):
    """Compile every .py under root into the cache (the image build runs this in the guest's chroot)."""
    count = 0
    for top, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(top, name)
                with open(path, 'rb') as fh:
                    source = fh.read()
                try:
                    _cached_code(source, path)
                except SyntaxError:
                    continue
                count += 1
    return count


def install():
    if os.environ.get('NMLAB_ZIPCACHE', '1') == '0':
        return
    sys.path_hooks[:] = [CachingZipImporter if hook is zipimport.zipimporter else hook for hook in sys.path_hooks]


install()
