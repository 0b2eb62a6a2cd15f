#Requires -Version 5.1
<#
.SYNOPSIS
    Runs the seed's WinDbg walk-through on a kernel dump with kd.exe, with or without MEX, and writes a log.

.DESCRIPTION
    Writes a debugger command file in the output folder (.symfix+, .scriptload of
    windbg\WrFastMutex.js, with MEX .load mex and .chain, then windbg\analyze-mex.txt or
    windbg\analyze-builtin.txt, then q) and runs, there,

        kd.exe -z <dump> -y <driver symbols> -logo <log> -cf <command file>

    It then prints the answer lines of the log (WrFastMutex.js's verdict per fast mutex, or
    why there is none, with a warning when it could not read everything) and returns the log
    path. Where it looks for kd.exe, mex.dll and the driver symbols, and when -Mode Auto falls
    back to the built-in commands: docs\windows.md, section 6. Elevation is not required, but
    a dump written by Task Manager or Get-StorageDiagnosticInfo may be readable by
    administrators only.

    Assumptions (not verified here, no Windows was available when this was written):
    the debugger exits after the final "q" of the command file; a function alias of a
    JavaScript extension takes its argument after the "!" command (!WrFastMutexWalk 1);
    ".load mex" finds mex.dll on the extension search path ("Loading Debugger Extension
    DLLs"); .chain prints a loaded extension as "<path>: image <version>, API ..." (the
    .load page).

.PARAMETER DumpPath
    The kernel dump (.dmp). Accepts pipeline input, e.g. from New-LiveKernelDump.ps1.

.PARAMETER Mode
    Auto (default), Mex or BuiltIn.

.PARAMETER DebuggerPath
    Full path of kd.exe (another debugger runs with a warning). Default: PATH, then the Windows Kits.

.PARAMETER MexPath
    Full path of mex.dll (the file must be named mex.dll: the command files call !mex.di and !mex.t).

.PARAMETER SymbolCache
    Local cache for Microsoft symbols. Default: C:\Symbols. It goes unquoted into .symfix+,
    so a space, ";" or '"' in it stops the script with a message.

.PARAMETER DriverSymbolPath
    Folder(s) with TestDriver.pdb, separated by semicolons. Default: the package builds' folders, newest first.

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

# .symfix+ takes the cache folder unquoted: refuse what would cut that line, before anything runs.
if ([string]::IsNullOrWhiteSpace($SymbolCache) -or $SymbolCache -match '[\s;"]') {
    throw ("-SymbolCache '$SymbolCache' cannot be used: it goes into the debugger command file as "".symfix+ <folder>"", " +
        'unquoted (no quoting is documented for .symfix), so it must be a folder path without spaces, ";" or quotes. ' +
        'Pass another folder, for example -SymbolCache C:\Symbols (the default).')
}

$repoRoot = Split-Path -Parent $PSScriptRoot
$windbgDir = Join-Path -Path $repoRoot -ChildPath 'windbg'
# The answer lines of WrFastMutex.js (its formatReport): a Verdict per fast mutex, or why there is none.
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
    $onPath = Get-Command -Name 'kd.exe' -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($onPath) {
        return $onPath.Path
    }
    foreach ($programFiles in @(@(${env:ProgramFiles(x86)}, $env:ProgramFiles) | Where-Object { $_ })) {
        $candidate = Join-Path -Path $programFiles -ChildPath 'Windows Kits\10\Debuggers\x64\kd.exe'
        if (Test-Path -LiteralPath $candidate -PathType Leaf) {
            return $candidate
        }
    }
    throw ('kd.exe was not found. This script needs "Debugging Tools for Windows" (a feature of the ' +
        'Windows SDK installer, also part of the WDK/EWDK), or pass -DebuggerPath. The WinDbg app from the Microsoft ' +
        'Store or winget does not put kd.exe on PATH: with only that app, open the dump in it and follow ' +
        'docs/windows.md, "By hand in WinDbg".')
}

# mex.dll -> @{ Path; Folder }, or $null.
function Find-Mex {
    param([string]$Path, [string]$DebuggerFolder)
    if ($Path) {
        $file = Resolve-ExistingFile -Path $Path -Description 'mex.dll'
        if ((Split-Path -Leaf $file) -ne 'mex.dll') {
            throw "-MexPath must name a file called mex.dll (the command files call !mex.di and !mex.t): $file"
        }
        return [pscustomobject]@{ Path = $file; Folder = (Split-Path -Parent $file) }
    }
    $folders = @((Join-Path -Path $DebuggerFolder -ChildPath 'winext'), (Join-Path -Path $DebuggerFolder -ChildPath 'winxp'), $DebuggerFolder)
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
    $lines = @('$$ Generated by scripts\Invoke-DumpAnalysis.ps1 for the TestDriver walk-through.',
        ('.echo ===== TestDriver analysis, mode ' + $(if ($UseMex) { 'MEX' } else { 'built-in' })),
        ('.symfix+ ' + $SymbolCache), '.reload', '.load jsprovider.dll', '.scriptload WrFastMutex.js')
    if ($UseMex) {
        $lines += @('.load mex', '.echo ===== Loaded extensions (mex.dll must be listed)', '.chain')
    }
    $lines += @(Get-Content -LiteralPath $AnalysisFile)
    $lines += 'q'
    [IO.File]::WriteAllLines($Path, $lines, (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false))
}

# The command file and log names of one run ('' first, '-builtin' for the run again without MEX) and
# the debugger's arguments.
function Get-DebuggerRun {
    param([string]$Dump, [string]$SymbolPath, [string]$Suffix = '')
    $name = 'testdriver-analysis' + $Suffix
    [pscustomobject]@{
        CommandFileName = "$name.txt"
        LogName         = "$name.log"
        Arguments       = @('-z', $Dump, '-y', $SymbolPath, '-logo', "$name.log", '-cf', "$name.txt")
    }
}

# One run in WorkingFolder: writes its command file, runs the debugger with ExtensionFolder first in
# _NT_DEBUGGER_EXTENSION_PATH for this run only, and reads its log, which must exist.
function Invoke-AnalysisRun {
    param([string]$Debugger, $Run, [bool]$UseMex, [string]$AnalysisFile, [string]$WorkingFolder,
        [string]$ExtensionFolder = '', [string]$Announcement = '')
    Write-CommandFile -Path (Join-Path -Path $WorkingFolder -ChildPath $Run.CommandFileName) -UseMex $UseMex -AnalysisFile $AnalysisFile
    if ($Announcement) {
        Write-Host $Announcement
    }
    $previousExtensionPath = $env:_NT_DEBUGGER_EXTENSION_PATH
    Push-Location -LiteralPath $WorkingFolder
    try {
        if ($ExtensionFolder) {
            $env:_NT_DEBUGGER_EXTENSION_PATH = (@($ExtensionFolder, $previousExtensionPath) | Where-Object { $_ }) -join ';'
        }
        $native = Invoke-NativeCommand -FilePath $Debugger -ArgumentList $Run.Arguments
    }
    finally {
        $env:_NT_DEBUGGER_EXTENSION_PATH = $previousExtensionPath
        Pop-Location
    }
    $log = Join-Path -Path $WorkingFolder -ChildPath $Run.LogName
    if (-not (Test-Path -LiteralPath $log -PathType Leaf)) {
        throw "The debugger (exit code $($native.ExitCode)) wrote no log at $log."
    }
    [pscustomobject]@{
        ExitCode = $native.ExitCode
        Log      = $log
        Text     = @(Get-Content -LiteralPath $log)
    }
}

$dump = Resolve-ExistingFile -Path $DumpPath -Description 'Dump'
if (-not (Test-Administrator)) {
    Write-Warning 'Not elevated: if the dump is readable only by administrators the debugger will fail to open it.'
}

$debugger = Find-Debugger -Path $DebuggerPath
$debuggerFolder = Split-Path -Parent $debugger
Write-Host "Debugger: $debugger"

$mex = Find-Mex -Path $MexPath -DebuggerFolder $debuggerFolder
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
    # whichever folder it was found in: an older kd.exe may not search them all
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
if ($useMex -and -not (($result.Text -join "`n") -match $MEX_LOADED_PATTERN)) {
    if ($Mode -eq 'Auto') {
        Write-Warning "MEX did not load (.chain in $($result.Log) lists no mex.dll): running again with the built-in commands."
        $debuggerRun = Get-DebuggerRun -Dump $dump -SymbolPath $symbolArgument -Suffix '-builtin'
        $result = Invoke-AnalysisRun -Debugger $debugger -Run $debuggerRun -UseMex $false -AnalysisFile $builtinAnalysis `
            -WorkingFolder $OutputDirectory -ExtensionFolder ''
    }
    else {
        Write-Warning "MEX did not load (.chain in $($result.Log) lists no mex.dll): its commands failed; see the log."
    }
}
if ($result.ExitCode -ne 0) {
    Write-Warning "The debugger exited with code $($result.ExitCode); read the log."
}
if (-not ($result.Text | Select-String -SimpleMatch 'JavaScript script successfully loaded')) {
    Write-Warning 'WrFastMutex.js did not load (no "JavaScript script successfully loaded" in the log).'
}
Write-Host ''
Write-Host 'Answer (from the log):'
$answer = @($result.Text | Select-String -Pattern $ANSWER_PATTERN)
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
Write-Host "Log: $($result.Log)"
return $result.Log
