#Requires -Version 5.1
<#
.SYNOPSIS
    Runs the seed's WinDbg walk-through on a kernel dump with kd.exe, with or without MEX, and writes a log.

.DESCRIPTION
    Builds a debugger command file in the output folder and runs

        kd.exe -z <dump> -y <driver symbols> -logo <log> -cf <command file>

    in that folder. The command file sets the Microsoft symbol server with a local
    cache (.symfix+), loads windbg\WrFastMutex.js (copied next to it, because
    .scriptload does not accept paths with spaces), loads MEX by name if it is used
    (.load mex, then .chain to show whether it loaded), and then runs one of the
    repository's scripts:

      windbg\analyze-mex.txt      (MEX)     !mex.di, !WrFastMutex, !WrFastMutexWalk 1
                                            (its table, then !mex.t <owner>, .frame /r 0n5,
                                            dt nt!_FAST_MUTEX <mutex>)
      windbg\analyze-builtin.txt  (no MEX)  vertarget, .bugcheck, !stacks 2 ExAcquireFastMutex,
                                            a dx query, !WrFastMutexWalk (its table, then
                                            !thread <owner>, .frame /r, dt nt!_FAST_MUTEX <mutex>)

    Thread and mutex addresses differ in every dump: the JavaScript extension finds
    them (threads in wait reason WrFastMutex, their wait block's event, the FAST_MUTEX
    0x18 bytes below it) and runs the per-thread commands itself, from one walk over
    the threads.

    At the end the script prints the lines of the log that answer the question: the
    verdict of WrFastMutex.js per fast mutex, or "No thread is waiting ...", or, when
    the dump or the symbols did not let it read everything, its "Cannot tell ..." or
    "Incomplete: ..." line, with a warning: an unreadable dump is not a "no deadlock".
    It returns the log path.

    Debugger: this script needs kd.exe, the kernel console debugger of "Debugging
    Tools for Windows", a feature of the Windows SDK installer and part of the
    WDK/EWDK: from -DebuggerPath, PATH, or
    C:\Program Files (x86)\Windows Kits\10\Debuggers\x64. Microsoft documents the
    analysis of a kernel-mode dump with KD or WinDbg ("Analyzing a Kernel-Mode Dump
    File"), so cdb.exe, the user-mode console debugger in the same folder, is not
    looked for; a -DebuggerPath that is not kd.exe is used with a warning. The WinDbg
    app (Microsoft Store / winget) puts no kd.exe on PATH; with only that app, open
    the dump in it and follow docs/windows.md, "By hand in WinDbg".

    MEX: mex.dll is looked for at -MexPath, else in the debugger's winext, winxp and
    own folders, %LOCALAPPDATA%\dbg\EngineExtensions and the folders in
    _NT_DEBUGGER_EXTENSION_PATH. Wherever it was found, its folder is put first in
    _NT_DEBUGGER_EXTENSION_PATH for the debugger's run only (restored after): the
    console debuggers of an older SDK may not search %LOCALAPPDATA%\dbg\EngineExtensions,
    which only Microsoft's current "Loading Debugger Extension DLLs" page names in the
    default extension path. It is then loaded by name (.load mex),
    so its path, with the spaces of "C:\Program Files (x86)\...", never appears in
    the command file. -Mode Auto uses MEX when mex.dll is found, and runs the
    built-in commands instead when it is not found, or when the log shows it did not
    load (no mex.dll line in the .chain output).

    Driver symbols: the folders of the TestDriver.pdb files "cargo make" left
    (target\debug\TestDriver_package for plain "cargo make",
    target\release\TestDriver_package for "cargo make default --release"), newest
    first; the debugger picks the one whose signature matches the driver in the dump.
    The script says which it found.

    Elevation is not required, but dumps written by Task Manager or
    Get-StorageDiagnosticInfo may only be readable by administrators.

    Assumptions (not verified here, no Windows was available when this was written):
    the debugger exits after the final "q" of the command file; a function alias of
    a JavaScript extension takes its argument after the "!" command
    (!WrFastMutexWalk 1), as Microsoft's and other published extensions show;
    ".load mex" finds mex.dll on the extension search path as Microsoft's "Loading
    Debugger Extension DLLs" describes; .chain prints a loaded extension as
    "<path>: image <version>, API ..." as in Microsoft's .load page.

.PARAMETER DumpPath
    The kernel dump (.dmp). Accepts pipeline input, e.g. from New-LiveKernelDump.ps1.

.PARAMETER Mode
    Auto (default), Mex or BuiltIn.

.PARAMETER DebuggerPath
    Full path of kd.exe. Another debugger is run with a warning: Microsoft documents kernel
    dumps with KD and WinDbg only.

.PARAMETER MexPath
    Full path of mex.dll (the file must be named mex.dll: the command files call !mex.di and !mex.t).

.PARAMETER SymbolCache
    Local cache for Microsoft symbols. Default: C:\Symbols. It must not contain a space,
    ";" or '"': the command file passes it to .symfix+ as it is, unquoted (Microsoft
    documents no quoting for .symfix's argument, and ";" separates debugger commands).
    The script stops with a message otherwise.

.PARAMETER DriverSymbolPath
    Folder(s) with TestDriver.pdb, separated by semicolons. Default: the package folders
    of the builds "cargo make" left in the repository (debug and release), newest first.

.PARAMETER OutputDirectory
    Folder for the command file and the log. Default: a new TestDriver-analysis-<time> folder next to the dump.

.EXAMPLE
    PS C:\> .\scripts\Invoke-DumpAnalysis.ps1 -DumpPath C:\Dumps\TestDriver-20231125-043101\localhost\LiveDump.dmp

.EXAMPLE
    PS C:\> .\scripts\New-LiveKernelDump.ps1 -FromTaskManager | .\scripts\Invoke-DumpAnalysis.ps1 -Mode BuiltIn

.EXAMPLE
    PS C:\> .\scripts\Invoke-DumpAnalysis.ps1 -DumpPath .\LiveDump.dmp -WhatIf
    Writes nothing and runs nothing: shows the debugger command line.
#>
[CmdletBinding(SupportsShouldProcess)]
[OutputType([string])]
param(
    [Parameter(Mandatory, ValueFromPipeline)]
    [string]$DumpPath,

    [ValidateSet('Auto', 'Mex', 'BuiltIn')]
    [string]$Mode = 'Auto',

    [string]$DebuggerPath,

    [string]$MexPath,

    [string]$SymbolCache = 'C:\Symbols',

    [string]$DriverSymbolPath,

    [string]$OutputDirectory
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

Import-Module -Name (Join-Path $PSScriptRoot 'TestDriver.Common.psm1') -Force

# .symfix+ takes the cache folder unquoted (Microsoft's .symfix page documents no quoting, and ';'
# ends a debugger command): refuse what would cut that command line, before anything runs.
if ([string]::IsNullOrWhiteSpace($SymbolCache) -or $SymbolCache -match '[\s;"]') {
    throw ("-SymbolCache '$SymbolCache' cannot be used: it goes into the debugger command file as "".symfix+ <folder>"", " +
        'unquoted (no quoting is documented for .symfix), so it must be a folder path without spaces, ";" or quotes. ' +
        'Pass another folder, for example -SymbolCache C:\Symbols (the default).')
}

$repoRoot = Split-Path -Parent $PSScriptRoot
$windbgDir = Join-Path -Path $repoRoot -ChildPath 'windbg'
# What WrFastMutex.js prints as its answer (formatReport in windbg/WrFastMutex.js): one Verdict
# per fast mutex, or the "no waiter" line, or why it cannot tell / what is missing.
$ANSWER_PATTERN = '^(Verdict: .*|No thread is waiting with reason WrFastMutex.*|Cannot tell whether any thread waits .*|Incomplete: .*)$'
# A loaded extension in .chain's output: "<path>\mex.dll: image <version>, API ..."
$MEX_LOADED_PATTERN = '(?im)\bmex(\.dll)?: image '

function Find-Debugger {
    param([string]$Path)
    if ($Path) {
        $given = Resolve-ExistingFile -Path $Path -Description 'Debugger'
        if ((Split-Path -Leaf $given) -ne 'kd.exe') {
            Write-Warning ("-DebuggerPath $given is not kd.exe: Microsoft documents the analysis of kernel-mode " +
                'dumps with KD or WinDbg only (cdb.exe is the user-mode debugger). Running it anyway.')
        }
        return $given
    }
    $folders = @()
    if (${env:ProgramFiles(x86)}) {
        $folders += Join-Path -Path ${env:ProgramFiles(x86)} -ChildPath 'Windows Kits\10\Debuggers\x64'
    }
    $folders += Join-Path -Path $env:ProgramFiles -ChildPath 'Windows Kits\10\Debuggers\x64'
    $onPath = Get-Command -Name 'kd.exe' -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($onPath) {
        return $onPath.Path
    }
    foreach ($folder in $folders) {
        $candidate = Join-Path -Path $folder -ChildPath 'kd.exe'
        if (Test-Path -LiteralPath $candidate -PathType Leaf) {
            return $candidate
        }
    }
    throw ('kd.exe was not found. This script needs "Debugging Tools for Windows" (a feature of the ' +
        'Windows SDK installer, also part of the WDK/EWDK), or pass -DebuggerPath. The WinDbg app from the Microsoft ' +
        'Store or winget does not put kd.exe on PATH: with only that app, open the dump in it and follow ' +
        'docs/windows.md, "By hand in WinDbg".')
}

# mex.dll -> @{ Path; Folder }, or $null. Its folder always goes first in _NT_DEBUGGER_EXTENSION_PATH
# for the run: the SDK's kd.exe need not search every folder looked in here.
function Find-Mex {
    param([string]$Path, [string]$DebuggerFolder)
    if ($Path) {
        $file = Resolve-ExistingFile -Path $Path -Description 'mex.dll'
        if ((Split-Path -Leaf $file) -ne 'mex.dll') {
            throw "-MexPath must name a file called mex.dll (the command files call !mex.di and !mex.t): $file"
        }
        return [pscustomobject]@{ Path = $file; Folder = (Split-Path -Parent $file) }
    }
    $folders = @(
        (Join-Path -Path $DebuggerFolder -ChildPath 'winext'),
        (Join-Path -Path $DebuggerFolder -ChildPath 'winxp'),
        $DebuggerFolder
    )
    if ($env:LOCALAPPDATA) {
        $folders += Join-Path -Path $env:LOCALAPPDATA -ChildPath 'dbg\EngineExtensions'
    }
    if ($env:_NT_DEBUGGER_EXTENSION_PATH) {
        $folders += @($env:_NT_DEBUGGER_EXTENSION_PATH -split ';' | Where-Object { $_.Trim().Length -gt 0 })
    }
    foreach ($folder in $folders) {
        $candidate = Join-Path -Path $folder -ChildPath 'mex.dll'
        if (Test-Path -LiteralPath $candidate -PathType Leaf) {
            return [pscustomobject]@{ Path = $candidate; Folder = $folder }
        }
    }
    return $null
}

# The command file for one run: symbols, the extension, MEX if used, the analysis, q.
function Write-CommandFile {
    param([string]$Path, [bool]$UseMex, [string]$AnalysisFile)
    $lines = New-Object -TypeName 'System.Collections.Generic.List[string]'
    $lines.Add('$$ Generated by scripts\Invoke-DumpAnalysis.ps1 for the TestDriver walk-through.')
    $lines.Add('.echo ===== TestDriver analysis, mode ' + $(if ($UseMex) { 'MEX' } else { 'built-in' }))
    $lines.Add('.symfix+ ' + $SymbolCache)
    $lines.Add('.reload')
    $lines.Add('.load jsprovider.dll')
    $lines.Add('.scriptload WrFastMutex.js')
    if ($UseMex) {
        $lines.Add('.load mex')
        $lines.Add('.echo ===== Loaded extensions (mex.dll must be listed)')
        $lines.Add('.chain')
    }
    foreach ($line in (Get-Content -LiteralPath $AnalysisFile)) {
        $lines.Add($line)
    }
    $lines.Add('q')
    [IO.File]::WriteAllLines($Path, $lines.ToArray(), (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false))
}

# Runs the debugger in the output folder; -ExtensionFolder goes first in
# _NT_DEBUGGER_EXTENSION_PATH for this run only. Returns the exit code.
function Invoke-Debugger {
    param([string]$Debugger, [string[]]$Arguments, [string]$WorkingFolder, [string]$ExtensionFolder)
    $exitCode = $null
    $previousExtensionPath = $env:_NT_DEBUGGER_EXTENSION_PATH
    Push-Location -LiteralPath $WorkingFolder
    try {
        if ($ExtensionFolder) {
            $env:_NT_DEBUGGER_EXTENSION_PATH = (@($ExtensionFolder, $previousExtensionPath) | Where-Object { $_ }) -join ';'
        }
        $run = Invoke-NativeCommand -FilePath $Debugger -ArgumentList $Arguments
        $exitCode = $run.ExitCode
    }
    finally {
        $env:_NT_DEBUGGER_EXTENSION_PATH = $previousExtensionPath
        Pop-Location
    }
    return $exitCode
}

# The file names and the command line of one debugger run.
function Get-DebuggerRun {
    <#
    .SYNOPSIS
        Names the command file and the log of one debugger run and builds its arguments.

    .DESCRIPTION
        Returns the command file name testdriver-analysis<Suffix>.txt, the log name
        testdriver-analysis<Suffix>.log and the debugger arguments
        -z <dump> -y <symbols> -logo <log> -cf <command file>. Nothing is written or run.

    .PARAMETER Dump
        Full path of the kernel dump (-z).

    .PARAMETER SymbolPath
        The symbol path given to the debugger (-y).

    .PARAMETER Suffix
        Appended to "testdriver-analysis" in both file names: '' for the first run,
        '-builtin' for the run again without MEX.

    .EXAMPLE
        $debuggerRun = Get-DebuggerRun -Dump $dump -SymbolPath $symbolArgument -Suffix ''

    .OUTPUTS
        PSCustomObject with CommandFileName (string), LogName (string) and Arguments (string[]).
    #>
    [CmdletBinding()]
    param(
        [string]$Dump,
        [string]$SymbolPath,
        [string]$Suffix = ''
    )
    $commandFileName = 'testdriver-analysis' + $Suffix + '.txt'
    $logName = 'testdriver-analysis' + $Suffix + '.log'
    [pscustomobject]@{
        CommandFileName = $commandFileName
        LogName         = $logName
        Arguments       = @('-z', $Dump, '-y', $SymbolPath, '-logo', $logName, '-cf', $commandFileName)
    }
}

# One debugger run: its command file, the debugger, then its log, which must exist.
function Invoke-AnalysisRun {
    <#
    .SYNOPSIS
        Writes the command file of a run, runs the debugger on it and reads the log.

    .DESCRIPTION
        Writes Run.CommandFileName in WorkingFolder (Write-CommandFile), runs the debugger
        there with Run.Arguments (Invoke-Debugger), and reads Run.LogName. Throws
        "The debugger (exit code <code>) wrote no log at <log>." when the log is missing.

    .PARAMETER Debugger
        Full path of kd.exe.

    .PARAMETER Run
        The object returned by Get-DebuggerRun.

    .PARAMETER UseMex
        Whether the command file loads MEX (.load mex, .chain).

    .PARAMETER AnalysisFile
        The repository's analysis commands: windbg\analyze-mex.txt or windbg\analyze-builtin.txt.

    .PARAMETER WorkingFolder
        The output folder: the command file, WrFastMutex.js and the log are there.

    .PARAMETER ExtensionFolder
        Put first in _NT_DEBUGGER_EXTENSION_PATH for the run (mex.dll's folder), or ''.

    .PARAMETER Announcement
        Written with Write-Host after the command file and before the debugger starts, if given.

    .EXAMPLE
        $result = Invoke-AnalysisRun -Debugger $debugger -Run $debuggerRun -UseMex $false -AnalysisFile $builtinAnalysis `
            -WorkingFolder $OutputDirectory -ExtensionFolder ''

    .OUTPUTS
        PSCustomObject with ExitCode, Log (string) and Text (string[], the log's lines).
    #>
    [CmdletBinding()]
    param(
        [string]$Debugger,
        $Run,
        [bool]$UseMex,
        [string]$AnalysisFile,
        [string]$WorkingFolder,
        [string]$ExtensionFolder = '',
        [string]$Announcement = ''
    )
    Write-CommandFile -Path (Join-Path -Path $WorkingFolder -ChildPath $Run.CommandFileName) -UseMex $UseMex -AnalysisFile $AnalysisFile
    if ($Announcement) {
        Write-Host $Announcement
    }
    $exitCode = Invoke-Debugger -Debugger $Debugger -Arguments $Run.Arguments -WorkingFolder $WorkingFolder -ExtensionFolder $ExtensionFolder
    $log = Join-Path -Path $WorkingFolder -ChildPath $Run.LogName
    if (-not (Test-Path -LiteralPath $log -PathType Leaf)) {
        throw "The debugger (exit code $exitCode) wrote no log at $log."
    }
    [pscustomobject]@{
        ExitCode = $exitCode
        Log      = $log
        Text     = @(Get-Content -LiteralPath $log)
    }
}

if (-not (Test-Path -LiteralPath $DumpPath -PathType Leaf)) {
    throw "Dump not found: $DumpPath"
}
$dump = (Resolve-Path -LiteralPath $DumpPath).ProviderPath
if (-not (Test-Administrator)) {
    Write-Warning 'Not elevated: if the dump is readable only by administrators the debugger will fail to open it.'
}

$debugger = Find-Debugger -Path $DebuggerPath
$debuggerFolder = Split-Path -Parent $debugger
Write-Host "Debugger: $debugger"

$mex = Find-Mex -Path $MexPath -DebuggerFolder $debuggerFolder
$useMex = $false
switch ($Mode) {
    'Mex' {
        if (-not $mex) {
            throw ('Mode Mex: mex.dll not found (looked in the debugger''s winext, winxp and own folders, ' +
                '%LOCALAPPDATA%\dbg\EngineExtensions, _NT_DEBUGGER_EXTENSION_PATH). Put it there or pass -MexPath.')
        }
        $useMex = $true
    }
    'BuiltIn' { $useMex = $false }
    default { $useMex = ($null -ne $mex) }
}
$mexFolder = ''
if ($useMex) {
    # Whichever folder it was found in, even one the debugger may search itself: Microsoft's
    # "Loading Debugger Extension DLLs" names %LOCALAPPDATA%\dbg\EngineExtensions in the default
    # search path, but the SDK's kd.exe may be older than that.
    $mexFolder = $mex.Folder
    Write-Host "MEX: $($mex.Path), loaded as "".load mex"" with $mexFolder first in _NT_DEBUGGER_EXTENSION_PATH"
}
else {
    Write-Host 'MEX: not used, running the built-in equivalents.'
}

if (-not $DriverSymbolPath) {
    $pdbs = @(Find-TestDriverBuild -RepositoryRoot $repoRoot -FileName 'TestDriver.pdb')
    if ($pdbs.Count -gt 0) {
        $DriverSymbolPath = (@($pdbs | ForEach-Object { $_.DirectoryName }) -join ';')
        Write-Host "Driver symbols: $($pdbs[0].FullName) (written $($pdbs[0].LastWriteTime), the newest of $($pdbs.Count))"
        foreach ($older in @($pdbs | Select-Object -Skip 1)) {
            Write-Host "                also on the path, older: $($older.FullName); the debugger takes the one that matches the dump"
        }
    }
}
$symbolArgument = $SymbolCache
if ($DriverSymbolPath) {
    $symbolArgument = $DriverSymbolPath
}
else {
    Write-Warning 'No TestDriver.pdb found: TestDriver frames will show as TestDriver+0x..., as in the seed.'
}
if (-not $OutputDirectory) {
    $OutputDirectory = Join-Path -Path (Split-Path -Parent $dump) -ChildPath ('TestDriver-analysis-' + (Get-Date -Format 'yyyyMMdd-HHmmss'))
}

$scriptFile = Join-Path -Path $windbgDir -ChildPath 'WrFastMutex.js'
$mexAnalysis = Join-Path -Path $windbgDir -ChildPath 'analyze-mex.txt'
$builtinAnalysis = Join-Path -Path $windbgDir -ChildPath 'analyze-builtin.txt'
$analysisFile = $builtinAnalysis
if ($useMex) {
    $analysisFile = $mexAnalysis
}
foreach ($needed in @($scriptFile, $mexAnalysis, $builtinAnalysis)) {
    if (-not (Test-Path -LiteralPath $needed -PathType Leaf)) {
        throw "Missing repository file: $needed"
    }
}

$debuggerRun = Get-DebuggerRun -Dump $dump -SymbolPath $symbolArgument -Suffix ''

if (-not $PSCmdlet.ShouldProcess($OutputDirectory, "$debugger $($debuggerRun.Arguments -join ' ')")) {
    return
}

New-Item -ItemType Directory -Path $OutputDirectory -Force | Out-Null
Copy-Item -LiteralPath $scriptFile -Destination (Join-Path -Path $OutputDirectory -ChildPath 'WrFastMutex.js') -Force
$result = Invoke-AnalysisRun -Debugger $debugger -Run $debuggerRun -UseMex $useMex -AnalysisFile $analysisFile `
    -Announcement 'Running the debugger (symbol download on first use can take minutes) ...' `
    -WorkingFolder $OutputDirectory -ExtensionFolder $mexFolder
$exitCode = $result.ExitCode
$log = $result.Log
$text = $result.Text

if ($useMex -and -not (($text -join "`n") -match $MEX_LOADED_PATTERN)) {
    if ($Mode -eq 'Auto') {
        Write-Warning "MEX did not load (.chain in $log lists no mex.dll): running again with the built-in commands."
        $debuggerRun = Get-DebuggerRun -Dump $dump -SymbolPath $symbolArgument -Suffix '-builtin'
        $result = Invoke-AnalysisRun -Debugger $debugger -Run $debuggerRun -UseMex $false -AnalysisFile $builtinAnalysis `
            -WorkingFolder $OutputDirectory -ExtensionFolder ''
        $exitCode = $result.ExitCode
        $log = $result.Log
        $text = $result.Text
    }
    else {
        Write-Warning "MEX did not load (.chain in $log lists no mex.dll): its commands failed; see the log."
    }
}

if ($exitCode -ne 0) {
    Write-Warning "The debugger exited with code $exitCode; read the log."
}
if (-not ($text | Select-String -SimpleMatch 'JavaScript script successfully loaded')) {
    Write-Warning 'WrFastMutex.js did not load (no "JavaScript script successfully loaded" in the log).'
}
Write-Host ''
Write-Host 'Answer (from the log):'
$answer = @($text | Select-String -Pattern $ANSWER_PATTERN)
if ($answer.Count -gt 0) {
    $answer | ForEach-Object { Write-Host "  $($_.Line)" }
    if (@($answer | Where-Object { $_.Line -match '^(Cannot tell|Incomplete:)' }).Count -gt 0) {
        Write-Warning ('WrFastMutex.js could not read everything (see above): an incomplete dump or missing nt symbols. ' +
            'An empty or partial result here is not a "no deadlock" answer.')
    }
}
else {
    Write-Warning 'No WrFastMutex.js result in the log: see the log for errors.'
}
Write-Host "Log: $log"
return $log
