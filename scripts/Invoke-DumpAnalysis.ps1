#Requires -Version 5.1
<#
.SYNOPSIS
    Runs the seed's WinDbg walk-through on a kernel dump with kd.exe (or cdb.exe), with or without MEX, and writes a log.

.DESCRIPTION
    Builds a debugger command file in the output folder and runs

        kd.exe -z <dump> -y <driver symbols> -logo <log> -cf <command file>

    in that folder. The command file sets the Microsoft symbol server with a local
    cache (.symfix+), loads windbg\WrFastMutex.js (copied next to it, because
    .scriptload does not accept paths with spaces), loads MEX if it is used, and then
    runs one of the repository's scripts:

      windbg\analyze-mex.txt      (MEX)     !mex.di, !WrFastMutex, !mex.t <owner>,
                                            .frame /r 0n5, dt nt!_FAST_MUTEX <mutex>
      windbg\analyze-builtin.txt  (no MEX)  vertarget, .bugcheck, !stacks 2 ExAcquireFastMutex,
                                            !WrFastMutexJs, a dx query, !thread <owner>,
                                            .frame /r, dt nt!_FAST_MUTEX <mutex>

    Thread and mutex addresses differ in every dump: the JavaScript extension finds
    them (threads in wait reason WrFastMutex, their wait block's event, the FAST_MUTEX
    0x18 bytes below it) and runs the per-thread commands itself (!WrFastMutexWalk).

    At the end the script prints the lines of the log that answer the question
    (the waiter count and the verdict of WrFastMutex.js) and returns the log path.

    Debuggers: kd.exe, else cdb.exe, from -DebuggerPath, PATH, or the Windows SDK's
    "Debugging Tools for Windows" (C:\Program Files (x86)\Windows Kits\10\Debuggers\x64).
    MEX: mex.dll from -MexPath, or from the debugger folder or its winext subfolder.
    -Mode Auto uses MEX when mex.dll is found, else the built-in commands.

    Elevation is not required, but dumps written by Task Manager or
    Get-StorageDiagnosticInfo may only be readable by administrators.

    Assumptions (not verified here, no Windows was available when this was written):
    the debugger exits after the final "q" of the command file, and a function alias
    of a JavaScript extension takes its argument after the "!" command
    (!WrFastMutexWalk 1), as Microsoft's and other published extensions show.

.PARAMETER DumpPath
    The kernel dump (.dmp). Accepts pipeline input, e.g. from New-LiveKernelDump.ps1.

.PARAMETER Mode
    Auto (default), Mex or BuiltIn.

.PARAMETER DebuggerPath
    Full path of kd.exe or cdb.exe.

.PARAMETER MexPath
    Full path of mex.dll.

.PARAMETER SymbolCache
    Local cache for Microsoft symbols. Default: C:\Symbols.

.PARAMETER DriverSymbolPath
    Folder with TestDriver.pdb. Default: the repository's target\release folder if it exists.

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

$repoRoot = Split-Path -Parent $PSScriptRoot
$windbgDir = Join-Path -Path $repoRoot -ChildPath 'windbg'

function Find-Debugger {
    param([string]$Path)
    if ($Path) {
        return Resolve-ExistingFile -Path $Path -Description 'Debugger'
    }
    $folders = @()
    if (${env:ProgramFiles(x86)}) {
        $folders += Join-Path -Path ${env:ProgramFiles(x86)} -ChildPath 'Windows Kits\10\Debuggers\x64'
    }
    $folders += Join-Path -Path $env:ProgramFiles -ChildPath 'Windows Kits\10\Debuggers\x64'
    foreach ($name in @('kd.exe', 'cdb.exe')) {
        $onPath = Get-Command -Name $name -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        if ($onPath) {
            return $onPath.Path
        }
        foreach ($folder in $folders) {
            $candidate = Join-Path -Path $folder -ChildPath $name
            if (Test-Path -LiteralPath $candidate -PathType Leaf) {
                return $candidate
            }
        }
    }
    throw ('Neither kd.exe nor cdb.exe was found. Install "Debugging Tools for Windows" (a feature of the Windows SDK ' +
        'installer, also part of the WDK/EWDK) or pass -DebuggerPath.')
}

function Find-Mex {
    param([string]$Path, [string]$DebuggerFolder)
    if ($Path) {
        return Resolve-ExistingFile -Path $Path -Description 'mex.dll'
    }
    foreach ($candidate in @((Join-Path -Path $DebuggerFolder -ChildPath 'winext\mex.dll'), (Join-Path -Path $DebuggerFolder -ChildPath 'mex.dll'))) {
        if (Test-Path -LiteralPath $candidate -PathType Leaf) {
            return $candidate
        }
    }
    return $null
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
            throw 'Mode Mex: mex.dll not found. Put it in the debugger folder (or its winext folder) or pass -MexPath.'
        }
        $useMex = $true
    }
    'BuiltIn' { $useMex = $false }
    default { $useMex = [bool]$mex }
}
if ($useMex) {
    if ($mex -match '\s') {
        throw "The path of mex.dll has a space ($mex): copy mex.dll into $debuggerFolder\winext and try again."
    }
    Write-Host "MEX: $mex"
}
else {
    Write-Host 'MEX: not used, running the built-in equivalents.'
}

if (-not $DriverSymbolPath) {
    $DriverSymbolPath = Join-Path -Path $repoRoot -ChildPath 'target\release'
}
if (-not $OutputDirectory) {
    $OutputDirectory = Join-Path -Path (Split-Path -Parent $dump) -ChildPath ('TestDriver-analysis-' + (Get-Date -Format 'yyyyMMdd-HHmmss'))
}

$analysisName = 'analyze-builtin.txt'
if ($useMex) {
    $analysisName = 'analyze-mex.txt'
}
$analysisFile = Join-Path -Path $windbgDir -ChildPath $analysisName
$scriptFile = Join-Path -Path $windbgDir -ChildPath 'WrFastMutex.js'
foreach ($needed in @($analysisFile, $scriptFile)) {
    if (-not (Test-Path -LiteralPath $needed -PathType Leaf)) {
        throw "Missing repository file: $needed"
    }
}

$commandFileName = 'testdriver-analysis.txt'
$logName = 'testdriver-analysis.log'
$symbolArgument = $DriverSymbolPath
if (-not (Test-Path -LiteralPath $DriverSymbolPath -PathType Container)) {
    Write-Warning "No driver symbols at ${DriverSymbolPath}: TestDriver frames will show as TestDriver+0x..., as in the seed."
    $symbolArgument = $SymbolCache
}
$debuggerArguments = @('-z', $dump, '-y', $symbolArgument, '-logo', $logName, '-cf', $commandFileName)

if (-not $PSCmdlet.ShouldProcess($OutputDirectory, "$debugger $($debuggerArguments -join ' ')")) {
    return
}

New-Item -ItemType Directory -Path $OutputDirectory -Force | Out-Null
Copy-Item -LiteralPath $scriptFile -Destination (Join-Path -Path $OutputDirectory -ChildPath 'WrFastMutex.js') -Force

$lines = New-Object -TypeName 'System.Collections.Generic.List[string]'
$lines.Add('$$ Generated by scripts\Invoke-DumpAnalysis.ps1 for the TestDriver walk-through.')
$lines.Add('.echo ===== TestDriver analysis, mode ' + $(if ($useMex) { 'MEX' } else { 'built-in' }))
$lines.Add('.symfix+ ' + $SymbolCache)
$lines.Add('.reload')
$lines.Add('.load jsprovider.dll')
$lines.Add('.scriptload WrFastMutex.js')
if ($useMex) {
    $lines.Add('.load ' + $mex)
}
foreach ($line in (Get-Content -LiteralPath $analysisFile)) {
    $lines.Add($line)
}
$lines.Add('q')
$commandFile = Join-Path -Path $OutputDirectory -ChildPath $commandFileName
[IO.File]::WriteAllLines($commandFile, $lines.ToArray(), (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false))

Write-Host "Running the debugger (symbol download on first use can take minutes) ..."
Push-Location -LiteralPath $OutputDirectory
try {
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    & $debugger @debuggerArguments 2>&1 | Out-Null
    $exitCode = $LASTEXITCODE
    $ErrorActionPreference = $previous
}
finally {
    Pop-Location
}

$log = Join-Path -Path $OutputDirectory -ChildPath $logName
if (-not (Test-Path -LiteralPath $log -PathType Leaf)) {
    throw "The debugger (exit code $exitCode) wrote no log at $log."
}
if ($exitCode -ne 0) {
    Write-Warning "The debugger exited with code $exitCode; read the log."
}
$text = Get-Content -LiteralPath $log
if (-not ($text | Select-String -SimpleMatch 'JavaScript script successfully loaded')) {
    Write-Warning 'WrFastMutex.js did not load (no "JavaScript script successfully loaded" in the log).'
}
Write-Host ''
Write-Host 'Answer (from the log):'
$answer = $text | Select-String -Pattern '^(Count: \d+|Verdict: .*|No thread is waiting with reason WrFastMutex.*)$'
if ($answer) {
    $answer | ForEach-Object { Write-Host "  $($_.Line)" }
}
else {
    Write-Warning 'No WrFastMutex.js result in the log: see the log for errors.'
}
Write-Host "Log: $log"
return $log
