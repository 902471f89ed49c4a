"""The simulator's AT commands: one method per command, as each dialect answers it."""
from __future__ import annotations

import logging
import re

from ..modem.dle import DLE, ETX, DleDecoder


log = logging.getLogger("switchboard.hw.sim")




class AtCommands:
    """AT command handlers of ModemSimulator (which owns the state they read and write)."""

    def _flag(self, kind: str, args: str | None, name: str, values: range, read: str) -> int | None:
        """A simple numeric setting: returns the new value for set, None otherwise (answer sent)."""
        if kind == "read":
            self._info(read)
        elif kind == "test":
            self._info(f"+{name}: ({values.start}-{values.stop - 1})")
        elif kind == "set" and args is not None and args.strip().isdigit() and int(args) in values:
            return int(args)
        else:
            self._cme(50)
        return None

    # GSM ----------------------------------------------------------------------------------------------

    def _cmd_cmee(self, kind: str, args: str | None) -> None:
        v = self._flag(kind, args, "CMEE", range(3), f"+CMEE: {self.cmee}")
        if v is not None:
            self.cmee = v
            self._final("OK")

    def _cmd_clip(self, kind: str, args: str | None) -> None:
        v = self._flag(kind, args, "CLIP", range(2), f"+CLIP: {int(self.clip)},1")
        if v is not None:
            self.clip = bool(v)
            self._final("OK")

    def _cmd_clcc(self, kind: str, args: str | None) -> None:
        if kind == "exec":
            lines = [self._clcc_line(self._call, self._clcc_stat(self._call))] if self._call else []
            self._info(*lines)
        elif kind == "set" and self.dialect == "sim7600":
            v = self._flag(kind, args, "CLCC", range(2), "")
            if v is not None:
                self.clcc_urc = bool(v)
                self._final("OK")
        elif kind == "read" and self.dialect == "sim7600":
            self._info(f"+CLCC: {int(self.clcc_urc)}")
        elif kind == "test":
            self._final("OK")
        else:
            self._error()

    def _cmd_dsci(self, kind: str, args: str | None) -> None:
        v = self._flag(kind, args, "DSCI", range(2), f"^DSCI: {int(self.dsci)}")
        if v is not None:
            self.dsci = bool(v)
            self._final("OK")

    def _cmd_creg(self, kind: str, args: str | None) -> None:
        v = self._flag(kind, args, "CREG", range(3), self._reg_line("CREG", self.creg, query=True))
        if v is not None:
            self.creg = v
            self._final("OK")

    def _cmd_cereg(self, kind: str, args: str | None) -> None:
        v = self._flag(kind, args, "CEREG", range(3), self._reg_line("CEREG", self.cereg, query=True))
        if v is not None:
            self.cereg = v
            self._final("OK")

    def _cmd_csq(self, kind: str, args: str | None) -> None:
        if kind == "exec":
            self._info(f"+CSQ: {self.signal_csq if self.sim == 'READY' else 99},99")
        elif kind == "test":
            self._info("+CSQ: (0-31,99),(0-7,99)")
        else:
            self._error()

    def _cmd_cops(self, kind: str, args: str | None) -> None:
        if kind == "read":
            self._info('+COPS: 0,0,"Switchboard Sim",7' if self._registered() else "+COPS: 0")
        elif kind == "set" and args is not None and re.fullmatch(r"[0-4](,[0-2](,.*)?)?", args):
            self._final("OK")
        elif kind == "test":
            self._info('+COPS: (2,"Switchboard Sim","SBSIM","00101",7),,(0-4),(0-2)')
        else:
            self._cme(50)

    def _cmd_cpin(self, kind: str, args: str | None) -> None:
        if kind != "read":
            self._cme(3 if kind == "set" else 50)
        elif self.sim == "ABSENT":
            self._cme(10)
        else:
            self._info(f"+CPIN: {self.sim}")

    def _cmd_cmgf(self, kind: str, args: str | None) -> None:
        v = self._flag(kind, args, "CMGF", range(2), f"+CMGF: {self.cmgf}")
        if v is not None:
            self.cmgf = v
            self._final("OK")

    def _cmd_cscs(self, kind: str, args: str | None) -> None:
        if kind == "set" and args and args.strip('"').upper() in ("GSM", "IRA", "UCS2"):
            self._final("OK")
        elif kind == "read":
            self._info('+CSCS: "GSM"')
        else:
            self._cme(50)

    def _cmd_cmgs(self, kind: str, args: str | None) -> None:
        if kind != "set" or not args:
            self._cme(50)
            return
        if self.sim != "READY":
            self._final("+CMS ERROR: 310" if self.sim == "ABSENT" else "+CMS ERROR: 311")
            return
        if self.cmgf != 1:
            self._final("+CMS ERROR: 304")  # PDU mode wants a length, not a number
            return
        m = re.fullmatch(r'"([+0-9*#]+)"(,\d+)?', args.strip())
        if m is None:
            self._final("+CMS ERROR: 304")
            return
        self._sms_to = m.group(1)
        self._send(b"\r\n> ")


    def _cmd_vts(self, kind: str, args: str | None) -> None:
        digits = (args or "").replace('"', "").replace(",", "").upper()
        if kind != "set" or not re.fullmatch(r"[0-9*#A-D]+", digits):
            self._cme(50)
            return
        call = self._call
        if call is None or call.state != "active" or (self.dialect == "v253" and not self.off_hook):
            self._cme(3)
            return
        self._dtmf_received.extend(digits)
        self._final("OK")

    def _cmd_cpcmreg(self, kind: str, args: str | None) -> None:
        if kind == "read":
            self._info(f"+CPCMREG: {int(self.pcm_on)}")
        elif kind == "set" and args in ("0", "1"):
            if args == "1" and (self._call is None or self._call.state != "active"):
                self._error()  # SIM7600: only once the call is connected
                return
            self.pcm_on = args == "1"
            self._final("OK")
        elif kind == "test":
            self._info("+CPCMREG: (0,1)")
        else:
            self._error()

    def _cmd_qpcmv(self, kind: str, args: str | None) -> None:
        if kind == "read":
            self._info(f"+QPCMV: {int(self.pcm_on)},0")
        elif kind == "set" and args is not None and re.fullmatch(r"0|1,[0-2]", args):
            self.pcm_on = args.startswith("1")
            self._final("OK")
        elif kind == "test":
            self._info("+QPCMV: (0,1),(0-2)")
        else:
            self._cme(50)

    def _cmd_cgmi(self, kind: str, args: str | None) -> None:
        self._info(self._identity()[0].replace("Manufacturer: ", ""))

    def _cmd_cgmm(self, kind: str, args: str | None) -> None:
        self._info(self._identity()[1].replace("Model: ", ""))

    # V.253 --------------------------------------------------------------------------------------------

    def _cmd_fclass(self, kind: str, args: str | None) -> None:
        if kind == "set" and args in ("0", "1", "8", "1.0"):
            self.fclass = 8 if args == "8" else 0
            self._final("OK")
        elif kind == "read":
            self._info(str(self.fclass))
        elif kind == "test":
            self._info("0,1,8")
        else:
            self._error()

    def _cmd_vcid(self, kind: str, args: str | None) -> None:
        v = self._flag(kind, args, "VCID", range(3), str(self.vcid))
        if v is not None:
            self.vcid = v
            self._final("OK")

    def _cmd_vls(self, kind: str, args: str | None) -> None:
        if self.fclass != 8:
            self._error()
            return
        if kind == "read":
            self._info(str(int(self.off_hook)))
        elif kind == "test":
            self._info('0,"",00000000,00000000,00000000', '1,"T",00000000,00000000,00000000')
        elif kind == "set" and args in ("0", "1"):
            if args == "1":
                self._answer(ata=False)
            else:
                self._final("OK")
                self._local_hangup()
        else:
            self._error()

    def _cmd_vsm(self, kind: str, args: str | None) -> None:
        if self.fclass != 8:
            self._error()
        elif kind == "read":
            self._info(self.vsm)
        elif kind == "test":
            self._info('1,"UNSIGNED PCM",8,0,(8000),(0),(0)')
        elif kind == "set" and args is not None and re.fullmatch(r"1,8000(,0,0)?", args):
            self.vsm = "1,8000,0,0"
            self._final("OK")
        else:
            self._error()

    def _cmd_vtr(self, kind: str, args: str | None) -> None:
        self._start_stream(kind, "duplex")

    def _cmd_vtx(self, kind: str, args: str | None) -> None:
        self._start_stream(kind, "tx")

    def _cmd_vrx(self, kind: str, args: str | None) -> None:
        self._start_stream(kind, "rx")

    def _cmd_vset(self, kind: str, args: str | None) -> None:
        self._final("OK" if self.fclass == 8 else "ERROR")

    _cmd_vit = _cmd_vsd = _cmd_vgr = _cmd_vgt = _cmd_vra = _cmd_vrn = _cmd_vset

    def _start_stream(self, kind: str, mode: str) -> None:
        if kind != "exec" or self.fclass != 8 or not self.off_hook:
            self._error()
            return
        self._stream = mode
        self._decoder = DleDecoder()
        self._final("CONNECT")

    def _end_stream(self) -> None:
        self._stream = None
        self._send(bytes([DLE, ETX]) + b"\r\nOK\r\n")

    # -- calls -----------------------------------------------------------------------------------------

    def _registered(self) -> bool:
        return self.sim == "READY" and 0 <= self.signal_csq <= 31

    def _reg_line(self, name: str, n: int, query: bool) -> str:
        stat = 1 if self._registered() else (2 if self.sim == "READY" else 0)
        fields = [str(stat)]
        if n == 2 and stat == 1:
            fields += ['"1A2B"', '"01C2D3E4"', "7"]
        return f"+{name}: " + ",".join(([str(n)] if query else []) + fields)

    def _set_signal(self, csq: int) -> None:
        was = self._registered()
        self.signal_csq = csq
        if self._registered() != was:
            for name, n in (("CREG", self.creg), ("CEREG", self.cereg)):
                if n:
                    self._urc(self._reg_line(name, n, query=False))
