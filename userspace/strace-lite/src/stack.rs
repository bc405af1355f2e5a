//! `-k`: the tracee's call stack at each syscall, unwound with the DWARF call-frame
//! information of `.eh_frame` and symbolised, printed as strace prints it:
//!
//! ```text
//!  > /usr/lib/x86_64-linux-gnu/libc.so.6(__write+0x10) [0xf8350]
//!  > /usr/bin/cat() [0x5d86]
//! ```
//!
//! The one idea: a frame is (rip, rsp, rbp). The module mapped at rip (from
//! `/proc/PID/maps`) has a CFI row for rip that says how to find the canonical frame
//! address (a register plus an offset) and where the caller's return address and rbp
//! were saved relative to it; reading those from the tracee's memory gives the
//! caller's frame. Frame pointers are never assumed. Modules are parsed once (by
//! path, device and inode) and kept. The maps are read again at each stack, since
//! any syscall may have changed them, unless the tracer sees every call of every
//! thread: then each thread's maps are kept until a call that changes mappings
//! (`mmap`, `munmap`, `mprotect`, an exec...) is seen in any thread, as strace's
//! mmap cache does.
//!
//! The bracketed number is the file offset of the address (the address minus the
//! mapping's start plus its offset), and the symbol is the nearest one at or below it
//! in `.dynsym` or `.symtab`, as strace's libunwind back end reports them.

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, NativeEndian, ParsedEhFrameHdr, RegisterRule,
    UnwindContext, UnwindSection, X86_64,
};
use goblin::elf::{
    program_header::PF_X, program_header::PT_LOAD, sym::STT_FUNC, sym::STT_GNU_IFUNC, Elf,
};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

/// Deepest stack printed (strace's libunwind back end stops at 256 too).
const MAX_FRAMES: usize = 256;
/// Modules larger than this are not read for unwinding (bounded memory).
const MAX_MODULE: u64 = 512 * 1024 * 1024;

/// Unwind sections are copied out of the file once per module and kept for the
/// tracer's life (modules are never dropped from the cache either), so they are
/// `'static`: only `.eh_frame` and `.eh_frame_hdr`, not the whole file.
type Slice = gimli::EndianSlice<'static, NativeEndian>;

/// One mapped ELF file: its unwind tables and symbols, in its own addresses.
struct Module {
    /// `PT_LOAD` segments: (file offset, virtual address, file size).
    loads: Vec<(u64, u64, u64)>,
    eh_frame: Option<(EhFrame<Slice>, u64)>,
    hdr: Option<ParsedEhFrameHdr<Slice>>,
    bases: BaseAddresses,
    /// Function symbols, sorted by address.
    symbols: Vec<(u64, String)>,
}

/// An executable mapping of a file.
struct Map {
    start: u64,
    end: u64,
    offset: u64,
    key: (u64, u64),
    path: String,
}

/// Unwinds stacks; keeps parsed modules between calls.
#[derive(Default)]
pub struct Unwinder {
    modules: HashMap<(u64, u64), Option<Rc<Module>>>,
    ctx: Option<Box<UnwindContext<usize>>>,
    /// Kept maps by thread id, when `keep_maps` (every call is seen).
    maps: HashMap<i32, Rc<Vec<Map>>>,
    keep_maps: bool,
}

impl Unwinder {
    /// An unwinder that keeps each thread's maps between stacks: only for a tracer that
    /// stops at every call of every thread, so no mapping change goes unseen.
    pub fn keeping_maps() -> Unwinder {
        Unwinder {
            keep_maps: true,
            ..Unwinder::default()
        }
    }

    /// Forgets kept maps a finished call `nr` may have changed (any thread's: threads
    /// share their mappings).
    pub fn after_call(&mut self, nr: u64) {
        use syscalls::Sysno as S;
        if self.maps.is_empty() {
            return;
        }
        if matches!(
            S::new(nr as usize),
            Some(
                S::mmap
                    | S::munmap
                    | S::mremap
                    | S::mprotect
                    | S::pkey_mprotect
                    | S::remap_file_pages
                    | S::brk
                    | S::shmat
                    | S::shmdt
                    | S::execve
                    | S::execveat
                    | S::io_uring_enter
            )
        ) {
            self.maps.clear();
        }
    }

    /// `tid` is gone (or has exec'd): its number may come back as another process.
    pub fn forget(&mut self, tid: i32) {
        self.maps.remove(&tid);
    }

    /// Appends the stack of the stopped thread `tid` to `out`, one ` > ...` line per frame.
    pub fn stack(&mut self, tid: i32, out: &mut String) {
        let Some(regs) = registers(tid) else {
            return;
        };
        let maps = match self.maps.get(&tid) {
            Some(m) => Rc::clone(m),
            None => {
                let m = Rc::new(read_maps(tid));
                if self.keep_maps && self.maps.len() < 4096 {
                    self.maps.insert(tid, Rc::clone(&m));
                }
                m
            }
        };
        let (mut rip, mut rsp, mut rbp) = (regs.rip, regs.rsp, regs.rbp);
        for depth in 0..MAX_FRAMES {
            let Some(map) = maps.iter().find(|m| m.start <= rip && rip < m.end) else {
                break;
            };
            let module = self.module(map);
            let file_off = rip - map.start + map.offset;
            let _ = write!(out, " > {}(", map.path);
            let Some(module) = module else {
                let _ = writeln!(out, ") [{file_off:#x}]");
                break;
            };
            let bias = module.bias(map);
            let svma = rip.wrapping_sub(bias);
            if let Some((addr, name)) = module.symbol(svma) {
                let _ = write!(out, "{name}+{:#x}", svma - addr);
            }
            let _ = writeln!(out, ") [{file_off:#x}]");
            // A return address points after the call: look its caller's row up at the
            // call itself. The first frame's rip is where the thread is.
            let lookup = if depth == 0 {
                svma
            } else {
                svma.wrapping_sub(1)
            };
            let ctx = self
                .ctx
                .get_or_insert_with(|| Box::new(UnwindContext::new()));
            match module.step(ctx, lookup, tid, rsp, rbp) {
                Some((ra, cfa, new_rbp)) if ra != 0 => {
                    rip = ra;
                    rsp = cfa;
                    rbp = new_rbp;
                }
                _ => break,
            }
        }
    }

    fn module(&mut self, map: &Map) -> Option<Rc<Module>> {
        self.modules
            .entry(map.key)
            .or_insert_with(|| Module::load(&map.path).map(Rc::new))
            .clone()
    }
}

impl Module {
    fn load(path: &str) -> Option<Module> {
        let md = std::fs::metadata(path).ok()?;
        if md.len() > MAX_MODULE {
            return None;
        }
        let bytes = std::fs::read(path).ok()?;
        let elf = Elf::parse(&bytes).ok()?;
        // Only executable segments: their pages are what a stack's addresses fall in.
        let loads = elf
            .program_headers
            .iter()
            .filter(|p| p.p_type == PT_LOAD && p.p_flags & PF_X != 0)
            .map(|p| (p.p_offset, p.p_vaddr, p.p_filesz))
            .collect();
        let mut bases = BaseAddresses::default();
        let mut eh_frame = None;
        let mut hdr_data = None;
        for sh in &elf.section_headers {
            let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
            let range = sh.file_range();
            let data = || -> Option<Slice> {
                let r = range.clone()?;
                let b: &'static [u8] = Box::leak(bytes.get(r)?.to_vec().into_boxed_slice());
                Some(Slice::new(b, NativeEndian))
            };
            match name {
                ".eh_frame" => {
                    bases = bases.set_eh_frame(sh.sh_addr);
                    eh_frame = data().map(|d| (EhFrame::from(d), sh.sh_addr));
                }
                ".eh_frame_hdr" => {
                    bases = bases.set_eh_frame_hdr(sh.sh_addr);
                    hdr_data = data();
                }
                ".text" => bases = bases.set_text(sh.sh_addr),
                ".got" => bases = bases.set_got(sh.sh_addr),
                _ => {}
            }
        }
        let hdr = hdr_data.and_then(|d| EhFrameHdr::from(d).parse(&bases, 8).ok());
        let mut symbols: Vec<(u64, String)> = Vec::new();
        // Of several names for one address, the first in table order wins (`.dynsym`
        // before `.symtab`), as strace's back end picks them: `read`, not `__read`.
        for (syms, strs) in [(&elf.dynsyms, &elf.dynstrtab), (&elf.syms, &elf.strtab)] {
            for s in syms.iter() {
                let kind = s.st_type();
                if (kind == STT_FUNC || kind == STT_GNU_IFUNC) && s.st_shndx != 0 && s.st_value != 0
                {
                    if let Some(name) = strs.get_at(s.st_name).filter(|n| !n.is_empty()) {
                        // Rust names demangled without their hash, as strace shows them.
                        let name = match rustc_demangle::try_demangle(name) {
                            Ok(d) => format!("{d:#}"),
                            Err(_) => name.to_string(),
                        };
                        symbols.push((s.st_value, name));
                    }
                }
            }
        }
        symbols.sort_by_key(|s| s.0);
        symbols.dedup_by_key(|s| s.0);
        Some(Module {
            loads,
            eh_frame,
            hdr,
            bases,
            symbols,
        })
    }

    /// What to subtract from a runtime address to get this module's own address.
    fn bias(&self, map: &Map) -> u64 {
        // A segment is mapped from its page-aligned offset to its page-aligned address.
        for &(off, vaddr, size) in &self.loads {
            let (off_page, vaddr_page) = (off & !0xfff, vaddr & !0xfff);
            if off_page <= map.offset && map.offset < off + size.max(1) {
                return map.start.wrapping_sub(vaddr_page + (map.offset - off_page));
            }
        }
        map.start.wrapping_sub(map.offset)
    }

    fn symbol(&self, svma: u64) -> Option<(u64, &str)> {
        let i = self.symbols.partition_point(|s| s.0 <= svma);
        let (addr, name) = self.symbols.get(i.checked_sub(1)?)?;
        Some((*addr, name.as_str()))
    }

    /// One step up: (return address, caller's rsp, caller's rbp).
    fn step(
        &self,
        ctx: &mut UnwindContext<usize>,
        svma: u64,
        tid: i32,
        rsp: u64,
        rbp: u64,
    ) -> Option<(u64, u64, u64)> {
        let (eh_frame, _) = self.eh_frame.as_ref()?;
        let row = match self.hdr.as_ref().and_then(|h| h.table()) {
            Some(table) => table
                .unwind_info_for_address(eh_frame, &self.bases, ctx, svma, EhFrame::cie_from_offset)
                .ok()?
                .clone(),
            None => eh_frame
                .unwind_info_for_address(&self.bases, ctx, svma, EhFrame::cie_from_offset)
                .ok()?
                .clone(),
        };
        let cfa = match row.cfa() {
            &CfaRule::RegisterAndOffset { register, offset } => {
                let base = if register == X86_64::RSP {
                    rsp
                } else if register == X86_64::RBP {
                    rbp
                } else {
                    return None;
                };
                base.wrapping_add(offset as u64)
            }
            CfaRule::Expression(_) => return None,
        };
        let ra = match row.register(X86_64::RA) {
            RegisterRule::Offset(o) => crate::mem::read_u64(tid, cfa.wrapping_add(o as u64))?,
            _ => return None,
        };
        let new_rbp = match row.register(X86_64::RBP) {
            RegisterRule::Offset(o) => crate::mem::read_u64(tid, cfa.wrapping_add(o as u64))?,
            _ => rbp,
        };
        Some((ra, cfa, new_rbp))
    }
}

fn registers(tid: i32) -> Option<libc::user_regs_struct> {
    // SAFETY: plain data; all-zero is valid, and PTRACE_GETREGS fills it whole.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: `regs` is a live, correctly sized buffer for the request.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            tid,
            0,
            &mut regs as *mut libc::user_regs_struct,
        )
    };
    (rc == 0).then_some(regs)
}

/// The executable file mappings of `tid`'s process.
fn read_maps(tid: i32) -> Vec<Map> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{tid}/maps")) else {
        return Vec::new();
    };
    let mut maps = Vec::new();
    for line in text.lines() {
        // start-end perms offset dev inode path
        let mut f = line.splitn(6, ' ');
        let (Some(range), Some(perms), Some(off), Some(dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let path = f.next().unwrap_or("").trim_start();
        if !perms.contains('x') || !path.starts_with('/') {
            continue;
        }
        let Some((s, e)) = range.split_once('-') else {
            continue;
        };
        let parse = |h: &str| u64::from_str_radix(h, 16).ok();
        let (Some(start), Some(end), Some(offset), Ok(ino)) =
            (parse(s), parse(e), parse(off), inode.parse::<u64>())
        else {
            continue;
        };
        let dev = dev.split(':').filter_map(parse).fold(0, |a, b| a << 20 | b);
        maps.push(Map {
            start,
            end,
            offset,
            key: (dev, ino),
            path: path.to_string(),
        });
    }
    maps
}
